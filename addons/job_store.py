"""The Async API's queue in the store: accept, claim with a lease, record each attempt's outcome.

Every function here is synchronous and runs on the queue's own worker thread
(`AsyncQueue.run`), never on mitmproxy's event loop. Claims are leases: a job
is delivered only by the process holding its lease, which renews it while the
attempt runs; every renewal and outcome is written only while that very claim
still holds the lease (fencing on the owner and the attempt number, which each
claim increments), and a job whose process died is claimed again once its lease
has expired.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import AsyncAttempt, AsyncJob
from models.async_job import WAITING, delivery_key
from models.events import Event, record_event
from models.store import make_session_factory

IDEMPOTENCY_WINDOW_S = 24 * 3600
INTERRUPTED = "interrupted: the delivering process stopped before the target answered"
JOBS, ATTEMPTS = AsyncJob.__table__, AsyncAttempt.__table__
# The hot statements, built once (SQLAlchemy then reuses their compiled form): accepting
# and finishing jobs through Core statements costs a fraction of the ORM's bulk paths.
INSERT_JOBS = JOBS.insert()
FINISH_JOB = (
    JOBS.update()
    .where(
        JOBS.c.id == bindparam("job"),
        JOBS.c.lease_owner == bindparam("owner"),
        JOBS.c.attempts_total == bindparam("attempt"),  # this claim, not a later one
    )
    .values(
        status=bindparam("status"),
        next_attempt_at=bindparam("next_attempt_at"),
        lease_owner=None,
        lease_expires_at=None,
        finished_at=bindparam("finished_at"),
        response_status=bindparam("response_status"),
        response_headers=bindparam("response_headers"),
        response_body=bindparam("response_body"),
        last_error=bindparam("last_error"),
    )
)
INSERT_ATTEMPTS = ATTEMPTS.insert()
INTERRUPT_ATTEMPTS = (
    ATTEMPTS.update()
    .where(
        ATTEMPTS.c.job_id.in_(bindparam("jobs", expanding=True)),
        ATTEMPTS.c.finished_at.is_(None),
    )
    .values(finished_at=bindparam("now"), error=INTERRUPTED)
)
FINISH_ATTEMPT = (
    ATTEMPTS.update()
    .where(ATTEMPTS.c.job_id == bindparam("job"), ATTEMPTS.c.number == bindparam("attempt"))
    .values(
        finished_at=bindparam("attempt_finished_at"),
        status=bindparam("response_status"),
        error=bindparam("last_error"),
    )
)


@dataclass(frozen=True)
class JobRequest:
    """The request a job delivers, as stored: without the caller's credential."""

    id: str
    proxy_id: str
    client_id: str
    method: str
    path: str
    query: str
    headers: list[list[str]]
    body: bytes | None

    @property
    def delivery_key(self) -> str:
        """The `Idempotency-Key` every delivery attempt of this job carries."""
        return delivery_key(self.headers, self.id)


@dataclass(frozen=True)
class NewJob(JobRequest):
    idempotency_key: str | None
    accepted_at: float
    window_s: float


@dataclass(frozen=True)
class Accepted:
    """What the caller is told: the job answering the request, and whether it is a repeat."""

    request_id: str
    repeated: bool


@dataclass(frozen=True)
class ClaimedJob(JobRequest):
    deadline_at: float
    attempts_in_round: int  # including this one
    attempt_number: int  # over the job's life
    attempt_request_id: str


@dataclass(frozen=True)
class Outcome:
    """One attempt's result and what becomes of the job."""

    status: str  # the job's next status: queued (retry), succeeded, failed, dead
    finished_at: float
    response_status: int | None = None
    response_headers: list[list[str]] | None = None
    response_body: str | None = None
    error: str | None = None
    next_attempt_at: float | None = None


class JobStore:
    def __init__(self, engine: Engine, owner: str):
        self._sessions = make_session_factory(engine)
        self._dialect = engine.dialect.name
        self.owner = owner  # this process's lease holder name

    def enqueue(self, jobs: list[NewJob]) -> list[Accepted]:
        """Commit `jobs` in one transaction; a repeated idempotency key answers with its job."""
        try:
            return self._enqueue(jobs)
        except IntegrityError:
            # Another process committed the same idempotency key first: now it is visible.
            return self._enqueue(jobs)

    def _enqueue(self, jobs: list[NewJob]) -> list[Accepted]:
        accepted, rows, seen = [], [], {}
        with self._sessions() as session:
            for job in jobs:
                first = self._first_with_key(session, job, seen) if job.idempotency_key else None
                if first is not None:
                    accepted.append(Accepted(first, repeated=True))
                    continue
                if job.idempotency_key:
                    seen[(job.proxy_id, job.idempotency_key)] = job.id
                rows.append(job_row(job))
                accepted.append(Accepted(job.id, repeated=False))
            if rows:
                session.connection().execute(INSERT_JOBS, rows)
            session.commit()
        return accepted

    @staticmethod
    def _first_with_key(session: Session, job: NewJob, seen: dict) -> str | None:
        """The job that already answers this idempotency key, if any (freeing a stale key)."""
        if (job.proxy_id, job.idempotency_key) in seen:
            return seen[(job.proxy_id, job.idempotency_key)]
        first = session.execute(
            select(AsyncJob.id, AsyncJob.accepted_at).where(
                AsyncJob.proxy_id == job.proxy_id,
                AsyncJob.idempotency_key == job.idempotency_key,
            )
        ).first()
        if first is None:
            return None
        if first.accepted_at >= job.accepted_at - IDEMPOTENCY_WINDOW_S:
            return first.id
        # Older than the window: the key is free again.
        session.execute(
            update(AsyncJob).where(AsyncJob.id == first.id).values(idempotency_key=None)
        )
        return None

    def claim(self, limit: int, lease_s: float, new_request_id) -> list[ClaimedJob]:
        """Lease up to `limit` due jobs to this process and open an attempt for each."""
        now = time.time()
        statement = CLAIM_SKIP_LOCKED if self._dialect == "postgresql" else CLAIM
        with self._sessions() as session:
            connection = session.connection()
            rows = connection.execute(
                statement,
                {"now": now, "limit": limit, "owner": self.owner, "expires": now + lease_s},
            ).all()
            if not rows:
                return []
            claimed = [claimed_job(row, new_request_id()) for row in rows]
            # An attempt left open by a process that died is closed as interrupted.
            connection.execute(
                INTERRUPT_ATTEMPTS, {"jobs": [job.id for job in claimed], "now": now}
            )
            connection.execute(
                INSERT_ATTEMPTS,
                [
                    {
                        "job_id": job.id,
                        "number": job.attempt_number,
                        "request_id": job.attempt_request_id,
                        "scheduled_at": row.next_attempt_at,
                        "started_at": now,
                    }
                    for job, row in zip(claimed, rows, strict=True)
                ],
            )
            session.commit()
        return claimed

    def renew(self, jobs: list[ClaimedJob], lease_s: float) -> list[bool]:
        """Extend the leases of attempts this process is running, in one statement;
        False where that attempt no longer holds its job's lease.

        A row this process owns is always an attempt it is running, so matching ids and
        attempt numbers as two sets (not pairs) extends nothing it does not hold; only an
        exact (id, attempt) match counts as renewed.
        """
        now = time.time()
        with self._sessions() as session:
            renewed = set(
                session.execute(
                    update(AsyncJob)
                    .where(
                        AsyncJob.id.in_({job.id for job in jobs}),
                        AsyncJob.lease_owner == self.owner,
                        AsyncJob.attempts_total.in_({job.attempt_number for job in jobs}),
                    )
                    .values(lease_expires_at=now + lease_s)
                    .returning(AsyncJob.id, AsyncJob.attempts_total)
                    .execution_options(synchronize_session=False)
                ).all()
            )
            session.commit()
        return [(job.id, job.attempt_number) in renewed for job in jobs]

    def finish(self, outcomes: list[tuple[ClaimedJob, Outcome]]) -> list[bool]:
        """Record attempts' outcomes in one transaction; False where the lease was lost
        meanwhile (nothing is written for that job)."""
        held, attempts = [], []
        with self._sessions() as session:
            connection = session.connection()
            for job, outcome in outcomes:
                values = finish_values(self.owner, job, outcome)
                # One statement per job: its row count says whether the lease still held.
                still_ours = connection.execute(FINISH_JOB, values).rowcount == 1
                held.append(still_ours)
                if not still_ours:
                    continue
                attempts.append(values)
                if outcome.status == "dead":
                    record_event(session, dead_letter_event(job, outcome))
            if attempts:
                connection.execute(FINISH_ATTEMPT, attempts)
            session.commit()
        return held


CLAIMED_COLUMNS = (
    JOBS.c.id, JOBS.c.proxy_id, JOBS.c.client_id, JOBS.c.method, JOBS.c.path,
    JOBS.c.query, JOBS.c.headers, JOBS.c.body, JOBS.c.deadline_at,
    JOBS.c.attempts_in_round, JOBS.c.attempts_total, JOBS.c.next_attempt_at,
)  # fmt: skip


def claim_statement(skip_locked: bool):
    """Lease up to `limit` due jobs (`now`, `owner`, `expires`), returning CLAIMED_COLUMNS;
    on PostgreSQL rows another claim has locked are skipped, not waited for."""
    due = (
        select(JOBS.c.id)
        .where(
            JOBS.c.status.in_(WAITING),
            JOBS.c.next_attempt_at <= bindparam("now"),
            or_(JOBS.c.lease_expires_at.is_(None), JOBS.c.lease_expires_at < bindparam("now")),
        )
        .order_by(JOBS.c.next_attempt_at)
        .limit(bindparam("limit"))
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    return (
        JOBS.update()
        .where(JOBS.c.id.in_(due.scalar_subquery()))
        .values(
            status="in_progress",
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("expires"),
            attempts_in_round=JOBS.c.attempts_in_round + 1,
            attempts_total=JOBS.c.attempts_total + 1,
        )
        .returning(*CLAIMED_COLUMNS)
    )


CLAIM, CLAIM_SKIP_LOCKED = claim_statement(False), claim_statement(True)


def claimed_job(row, request_id: str) -> ClaimedJob:
    return ClaimedJob(
        id=row.id,
        proxy_id=row.proxy_id,
        client_id=row.client_id,
        method=row.method,
        path=row.path,
        query=row.query,
        headers=row.headers,
        body=row.body,
        deadline_at=row.deadline_at,
        attempts_in_round=row.attempts_in_round,
        attempt_number=row.attempts_total,
        attempt_request_id=request_id,
    )


def finish_values(owner: str, job: ClaimedJob, outcome: Outcome) -> dict:
    """The parameters of FINISH_JOB and FINISH_ATTEMPT for one outcome."""
    return {
        "job": job.id,
        "owner": owner,
        "attempt": job.attempt_number,
        "status": outcome.status,
        "next_attempt_at": outcome.next_attempt_at,
        "finished_at": outcome.finished_at if outcome.status != "queued" else None,
        "attempt_finished_at": outcome.finished_at,
        "response_status": outcome.response_status,
        "response_headers": outcome.response_headers,
        "response_body": outcome.response_body,
        "last_error": outcome.error,
    }


def job_row(job: NewJob) -> dict:
    return {
        "id": job.id,
        "proxy_id": job.proxy_id,
        "client_id": job.client_id,
        "status": "queued",
        "method": job.method,
        "path": job.path,
        "query": job.query,
        "headers": job.headers,
        "body": job.body,
        "idempotency_key": job.idempotency_key,
        "accepted_at": job.accepted_at,
        "window_s": job.window_s,
        "deadline_at": job.accepted_at + job.window_s,
        "attempts_in_round": 0,
        "attempts_total": 0,
        "next_attempt_at": job.accepted_at,
    }


def dead_letter_event(job: ClaimedJob, outcome: Outcome) -> Event:
    """The client event of a job given up: `async.dead_letter`."""
    last = f"status {outcome.response_status}" if outcome.response_status else outcome.error
    return Event(
        name="async.dead_letter",
        client_id=job.client_id,
        title="Async request could not be delivered",
        message=(
            f"Request {job.id} to proxy {job.proxy_id} ({job.method} {job.path}) was given up "
            f"after {job.attempt_number} attempts; the last one ended with {last}."
        ),
        details={"requestId": job.id, "proxyId": job.proxy_id, "attempts": job.attempt_number},
    )
