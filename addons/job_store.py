"""The Async API's queue in the store: accept, claim with a lease, record each attempt's outcome.

Every function here is synchronous and runs on the queue's own worker thread
(`AsyncQueue.run`), never on mitmproxy's event loop. Claims are leases: a job
is delivered only by the process holding its lease, every outcome is written
only while the lease is still held (fencing), and a job whose process died
is claimed again once its lease has expired.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import AsyncAttempt, AsyncJob, Notification
from models.async_job import WAITING
from models.store import make_session_factory

IDEMPOTENCY_WINDOW_S = 24 * 3600
INTERRUPTED = "interrupted: the delivering process stopped before the target answered"


@dataclass(frozen=True)
class NewJob:
    id: str
    proxy_id: str
    client_id: str
    method: str
    path: str
    query: str
    headers: list[list[str]]
    body: bytes | None
    idempotency_key: str | None
    accepted_at: float
    window_s: float


@dataclass(frozen=True)
class Accepted:
    """What the caller is told: the job answering the request, and whether it is a repeat."""

    request_id: str
    repeated: bool


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    proxy_id: str
    client_id: str
    method: str
    path: str
    query: str
    headers: list[list[str]]
    body: bytes | None
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
        with self._sessions() as session:
            accepted = [self._accept(session, job) for job in jobs]
            session.commit()
            return accepted

    @staticmethod
    def _accept(session: Session, job: NewJob) -> Accepted:
        if job.idempotency_key:
            first = session.execute(
                select(AsyncJob.id, AsyncJob.accepted_at).where(
                    AsyncJob.proxy_id == job.proxy_id,
                    AsyncJob.idempotency_key == job.idempotency_key,
                )
            ).first()
            if first and first.accepted_at >= job.accepted_at - IDEMPOTENCY_WINDOW_S:
                return Accepted(first.id, repeated=True)
            if first:  # older than the window: the key is free again
                session.execute(
                    update(AsyncJob).where(AsyncJob.id == first.id).values(idempotency_key=None)
                )
        session.execute(
            insert(AsyncJob).values(
                id=job.id,
                proxy_id=job.proxy_id,
                client_id=job.client_id,
                status="queued",
                method=job.method,
                path=job.path,
                query=job.query,
                headers=job.headers,
                body=job.body,
                idempotency_key=job.idempotency_key,
                accepted_at=job.accepted_at,
                window_s=job.window_s,
                deadline_at=job.accepted_at + job.window_s,
                attempts_in_round=0,
                next_attempt_at=job.accepted_at,
            )
        )
        return Accepted(job.id, repeated=False)

    def claim(self, limit: int, lease_s: float, new_request_id) -> list[ClaimedJob]:
        """Lease up to `limit` due jobs to this process and open an attempt for each."""
        now = time.time()
        due = (
            select(AsyncJob.id)
            .where(
                AsyncJob.status.in_(WAITING),
                AsyncJob.next_attempt_at <= now,
                or_(AsyncJob.lease_expires_at.is_(None), AsyncJob.lease_expires_at < now),
            )
            .order_by(AsyncJob.next_attempt_at)
            .limit(limit)
        )
        if self._dialect == "postgresql":
            due = due.with_for_update(skip_locked=True)
        with self._sessions() as session:
            rows = (
                session.execute(
                    update(AsyncJob)
                    .where(AsyncJob.id.in_(due.scalar_subquery()))
                    .values(
                        status="in_progress",
                        lease_owner=self.owner,
                        lease_expires_at=now + lease_s,
                        attempts_in_round=AsyncJob.attempts_in_round + 1,
                    )
                    .returning(AsyncJob)
                )
                .scalars()
                .all()
            )
            claimed = [self._open_attempt(session, job, now, new_request_id()) for job in rows]
            session.commit()
        return claimed

    @staticmethod
    def _open_attempt(session: Session, job: AsyncJob, now: float, request_id: str):
        # An attempt left open by a process that died is closed as interrupted.
        session.execute(
            update(AsyncAttempt)
            .where(AsyncAttempt.job_id == job.id, AsyncAttempt.finished_at.is_(None))
            .values(finished_at=now, error=INTERRUPTED)
        )
        last = session.scalar(
            select(func.coalesce(func.max(AsyncAttempt.number), 0)).where(
                AsyncAttempt.job_id == job.id
            )
        )
        session.execute(
            insert(AsyncAttempt).values(
                job_id=job.id,
                number=last + 1,
                request_id=request_id,
                scheduled_at=job.next_attempt_at,
                started_at=now,
            )
        )
        return ClaimedJob(
            id=job.id,
            proxy_id=job.proxy_id,
            client_id=job.client_id,
            method=job.method,
            path=job.path,
            query=job.query,
            headers=job.headers,
            body=job.body,
            deadline_at=job.deadline_at,
            attempts_in_round=job.attempts_in_round,
            attempt_number=last + 1,
            attempt_request_id=request_id,
        )

    def finish(self, job: ClaimedJob, outcome: Outcome) -> bool:
        """Record an attempt's outcome; False (nothing written) if the lease was lost meanwhile."""
        final = outcome.status != "queued"
        with self._sessions() as session:
            held = session.execute(
                update(AsyncJob)
                .where(AsyncJob.id == job.id, AsyncJob.lease_owner == self.owner)
                .values(
                    status=outcome.status,
                    next_attempt_at=outcome.next_attempt_at,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=outcome.finished_at if final else None,
                    response_status=outcome.response_status,
                    response_headers=outcome.response_headers,
                    response_body=outcome.response_body,
                    last_error=outcome.error,
                )
            ).rowcount
            if not held:
                session.rollback()
                return False
            session.execute(
                update(AsyncAttempt)
                .where(AsyncAttempt.job_id == job.id, AsyncAttempt.number == job.attempt_number)
                .values(
                    finished_at=outcome.finished_at,
                    status=outcome.response_status,
                    error=outcome.error,
                )
            )
            if outcome.status == "dead":
                session.add(dead_letter_notice(job, outcome))
            session.commit()
            return True


def dead_letter_notice(job: ClaimedJob, outcome: Outcome) -> Notification:
    last = f"status {outcome.response_status}" if outcome.response_status else outcome.error
    return Notification(
        client_id=job.client_id,
        type="client",
        title="Async request could not be delivered",
        message=(
            f"Request {job.id} to proxy {job.proxy_id} ({job.method} {job.path}) was given up "
            f"after {job.attempt_number} attempts; the last one ended with {last}."
        ),
        details={"requestId": job.id, "proxyId": job.proxy_id, "attempts": job.attempt_number},
    )
