"""Check cycles: claim the proxies due, check them in stages, write their grades.

A cycle (`run_check_cycle`) first asks the judge directly for the checker's own address (a
judge that does not answer stops the cycle before any proxy is claimed, so a dead judge never
marks members dead), removes proxies dead longer than `pool_dead_remove_hours` and check
history older than `pool_check_days`, then works in batches of `pool_check_concurrency`:

1. claim: the due proxies (`next_check_at` passed, no live claim) get `check_claimed_until`
   set to a token unique to this claim, by a conditional UPDATE (compare-and-set), so two
   admin processes never check one proxy at once; the claim outlasts a batch's longest run;
2. check: every claimed proxy at once on an asyncio loop in the calling thread (the
   scheduler's job thread, never a request thread), each check under `pool_check_timeout_ms`;
3. write: the batch's `pool_checks` rows and the proxies' grades in one transaction, for the
   proxies still claimed with this token; the claim is released.

Members' passwords are unsealed only in memory, for the checks.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import timedelta

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.crypto import KeyRing
from models.pool import PoolCheck, PoolProxy
from models.settings import Settings
from models.solo_tick import SoloTick
from models.ssrf_policy import effective
from models.store import make_engine, make_session_factory
from pool.checkers import CHECKERS
from pool.checkers.base import Context, Judge, Member, Outcome
from pool.checkers.run import ask_directly, check_members
from pool.errors import PoolError
from pool.judge import judge_url
from pool.passwords import open_password
from pool.scoring import Before, grade, score

log = logging.getLogger("portcullis.pool.checks")

CLAIM_MARGIN_S = 60.0
STALE_AFTER_RECHECKS = 2  # an active proxy this many recheck periods unchecked is re-scored
STALE_REGRADE_BATCH = 1000
UNSEALABLE = "its password cannot be decrypted with the master keys"


def claim_seconds(settings: Settings) -> float:
    """How long a claim lasts: every stage timing out, plus a margin."""
    stages = len({checker.stage for checker in CHECKERS})
    return stages * settings.pool_check_timeout_ms / 1000 + CLAIM_MARGIN_S


def claim_due(
    sessions: sessionmaker, size: int, claim_s: float, due_by: float
) -> tuple[float, list[PoolProxy] | None]:
    """Claim up to `size` proxies due by `due_by` (epoch s): (the claim's token, the claimed
    rows, detached). The rows are None when none is due; [] when another process claimed
    them first."""
    now = time.time()
    token = now + claim_s + secrets.randbelow(100_000) / 1e6  # unique among live claims
    free = or_(PoolProxy.check_claimed_until.is_(None), PoolProxy.check_claimed_until < now)
    with sessions() as session:
        ids = session.scalars(
            select(PoolProxy.id)
            .where(PoolProxy.next_check_at <= due_by, free)
            .order_by(PoolProxy.next_check_at)
            .limit(size)
        ).all()
        if not ids:
            return token, None
        session.execute(
            update(PoolProxy)
            .where(PoolProxy.id.in_(ids), free)
            .values(check_claimed_until=token)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        rows = session.scalars(
            select(PoolProxy).where(PoolProxy.id.in_(ids), PoolProxy.check_claimed_until == token)
        ).all()
        session.expunge_all()
    return token, list(rows)


def members_of(rows: list[PoolProxy], key_ring: KeyRing) -> tuple[list[Member], dict]:
    """The rows as checkable members; those whose password won't open fail at once."""
    members, failed = [], {}
    for row in rows:
        try:
            password = open_password(key_ring, row)
        except Exception:  # a tampered secret or a missing master key: never check blind
            failed[row.id] = [Outcome("tcp_connect", 1, False, None, UNSEALABLE)]
            continue
        members.append(Member(row.id, row.host, row.port, row.protocol, row.username, password))
    return members, failed


def write_results(
    sessions: sessionmaker, settings: Settings, token: float, results: dict[str, list[Outcome]]
) -> dict[str, int]:
    """One transaction: the checks' rows and the grades of the proxies still claimed."""
    now = utcnow()
    counts = {"checked": 0, "active": 0, "dead": 0}
    with sessions() as session:
        rows = session.scalars(
            select(PoolProxy).where(
                PoolProxy.id.in_(list(results)), PoolProxy.check_claimed_until == token
            )
        ).all()
        checks = []
        for row in rows:
            outcomes = results[row.id]
            values = grade(_before(row), outcomes, now, settings.pool_recheck_seconds)
            for name, value in values.items():
                setattr(row, name, value)
            row.check_claimed_until = None
            checks += [_check_row(row.id, outcome, now) for outcome in outcomes]
            counts["checked"] += 1
            if "status" in values:  # not when the member could not be judged
                counts[values["status"]] = counts.get(values["status"], 0) + 1
        if checks:
            session.execute(insert(PoolCheck), checks)
        session.commit()
    return counts


def _before(row: PoolProxy) -> Before:
    return Before(
        row.status,
        row.avg_latency_ms,
        row.uptime_pct,
        row.checks_total or 0,
        row.checks_passed or 0,
        row.consecutive_failures or 0,
        row.dead_since,
    )


def _check_row(proxy_id: str, outcome: Outcome, now) -> dict:
    return {
        "proxy_id": proxy_id,
        "checker_name": outcome.checker_name,
        "stage": outcome.stage,
        "passed": outcome.passed,
        "latency_ms": outcome.latency_ms,
        "detail": outcome.detail[:1000],
        "created_at": now,
    }


def release(sessions: sessionmaker, token: float) -> None:
    with sessions() as session:
        session.execute(
            update(PoolProxy)
            .where(PoolProxy.check_claimed_until == token)
            .values(check_claimed_until=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()


def housekeeping(session: Session, settings: Settings) -> int:
    """Remove proxies dead too long and check history past retention, lower the scores of
    active proxies left unchecked too long (freshness); the number of proxies removed."""
    now = utcnow()
    unclaimed = or_(
        PoolProxy.check_claimed_until.is_(None), PoolProxy.check_claimed_until < time.time()
    )
    dead_before = now - timedelta(hours=settings.pool_dead_remove_hours)
    removable = (PoolProxy.status == "dead", PoolProxy.dead_since < dead_before, unclaimed)
    session.execute(
        delete(PoolCheck).where(PoolCheck.proxy_id.in_(select(PoolProxy.id).where(*removable)))
    )
    removed = session.execute(delete(PoolProxy).where(*removable)).rowcount
    stale_before = now - timedelta(seconds=STALE_AFTER_RECHECKS * settings.pool_recheck_seconds)
    stale = session.execute(
        select(
            PoolProxy.id,
            PoolProxy.last_checked_at,
            PoolProxy.uptime_pct,
            PoolProxy.avg_latency_ms,
            PoolProxy.consecutive_failures,
        )
        .where(PoolProxy.status == "active", PoolProxy.last_checked_at < stale_before, unclaimed)
        .order_by(PoolProxy.last_checked_at)
        .limit(STALE_REGRADE_BATCH)
    ).all()
    for proxy_id, checked_at, uptime, latency, failures in stale:
        # The checkers fell behind: an overdue verdict is worth less. Compare-and-set on
        # last_checked_at, so a grade a checker writes meanwhile is never overwritten.
        age_s = (now - checked_at).total_seconds()
        session.execute(
            update(PoolProxy)
            .where(PoolProxy.id == proxy_id, PoolProxy.last_checked_at == checked_at)
            .values(score=round(score(uptime, latency, failures or 0, age_s), 6))
            .execution_options(synchronize_session=False)
        )
    history_before = now - timedelta(days=settings.pool_check_days)
    session.execute(delete(PoolCheck).where(PoolCheck.created_at < history_before))
    session.commit()
    return removed or 0


def cycle_context(settings: Settings) -> Context:
    """The judge, the checker's own address as the judge sees it and the judge's baseline
    proxy headers (asked directly)."""
    url = judge_url(settings)
    if not url:
        raise PoolError(
            503,
            "JUDGE_UNKNOWN",
            "No judge URL: set PORTCULLIS_POOL_JUDGE_URL or PORTCULLIS_PUBLIC_URL",
        )
    try:
        judge = Judge.parse(url)
    except ValueError as exc:
        raise PoolError(503, "JUDGE_UNKNOWN", str(exc)) from exc
    timeout_s = settings.pool_check_timeout_ms / 1000
    try:
        own, baseline = asyncio.run(ask_directly(judge, timeout_s))
    except Exception as exc:
        raise PoolError(
            502, "JUDGE_UNREACHABLE", f"The judge at {url} did not answer: {exc or 'timeout'}"
        ) from exc
    own_addresses = frozenset({own} if own else ())
    # The judge saw us come from loopback: it listens there, out of reach of other members.
    on_loopback = own is not None and effective(own).is_loopback
    if on_loopback:
        log.info("the judge %s is on loopback: only members on loopback can be judged", url)
    return Context(
        judge, own_addresses, timeout_s, settings.pool_allow_proxies, on_loopback, baseline
    )


def run_check_cycle(
    settings: Settings,
    key_ring: KeyRing,
    sessions: sessionmaker | None = None,
    limit: int | None = None,
) -> dict:
    """Check every proxy due now (at most `limit`): {"checked", "active", "dead", "removed"}.

    Raises PoolError when the judge is unknown or does not answer (nothing is claimed then).
    """
    engine = None
    if sessions is None:
        engine = make_engine(settings.database_url)
        sessions = make_session_factory(engine)
    try:
        ctx = cycle_context(settings)
        with sessions() as session:
            removed = housekeeping(session, settings)
        totals = {"checked": 0, "active": 0, "dead": 0, "removed": removed}
        claim_s = claim_seconds(settings)
        started = time.time()  # proxies falling due during the cycle wait for the next one
        while limit is None or totals["checked"] < limit:
            size = settings.pool_check_concurrency
            if limit is not None:
                size = min(size, limit - totals["checked"])
            token, rows = claim_due(sessions, size, claim_s, started)
            if rows is None:
                break
            if not rows:  # lost the race for these: the next look skips them
                continue
            try:
                members, results = members_of(rows, key_ring)
                results.update(
                    asyncio.run(check_members(members, ctx, settings.pool_check_concurrency))
                )
                counts = write_results(sessions, settings, token, results)
            except BaseException:
                release(sessions, token)
                raise
            for name, value in counts.items():
                totals[name] = totals.get(name, 0) + value
        return totals
    finally:
        if engine is not None:
            engine.dispose()


class CheckDueProxies(SoloTick):
    """The scheduler's tick (every `pool_check_interval_ms`): check every proxy due."""

    thread_name = "portcullis-pool-checks"
    failure = "pool check cycle failed"

    def run(self) -> None:
        if not self._any_due():
            return
        try:
            result = run_check_cycle(self.settings, self.key_ring, self.sessions)
        except PoolError as exc:
            log.warning("pool check cycle skipped: %s", exc.message)
            return
        if result["checked"] or result["removed"]:
            log.info("pool check cycle: %s", result)

    def _any_due(self) -> bool:
        """Whether a cycle has anything to do (no judge request for an idle pool)."""
        dead_before = utcnow() - timedelta(hours=self.settings.pool_dead_remove_hours)
        with self.sessions() as session:
            due = session.scalar(
                select(PoolProxy.id).where(PoolProxy.next_check_at <= time.time()).limit(1)
            )
            removable = session.scalar(
                select(PoolProxy.id)
                .where(PoolProxy.status == "dead", PoolProxy.dead_since < dead_before)
                .limit(1)
            )
            return due is not None or removable is not None
