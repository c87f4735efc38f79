"""Background jobs of the control plane, run by APScheduler inside `run_admin.py serve`."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from admin.notify.producers import scan_credential_expiry
from admin.notify.worker import deliver_due
from admin.rollups import Retention, compact_and_purge
from models import AsyncAttempt, AsyncJob, RequestLog, utcnow
from models.crypto import KeyRing, load_key_ring
from models.settings import Settings
from models.sign_in_throttle import purge_old_failures
from models.solo_tick import SoloTick
from models.store import make_engine, make_session_factory
from models.web_session import SessionTimeouts, purge_expired_sessions
from pool.accounts import REGISTER_WINDOW
from pool.check_cycle import CheckDueProxies
from pool.pool_ticks import PoolEventScans
from pool.schedule import ScrapeDueSources

log = logging.getLogger("portcullis.jobs")
PURGE_INTERVAL_S = 3600
EXPIRY_SCAN_INTERVAL_S = 3600


@contextmanager
def store_session(settings: Settings) -> Iterator[Session]:
    """A session on a short-lived engine, for a job or a CLI command."""
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def purge_expired_request_logs(settings: Settings) -> int:
    """Delete request log entries past their TTL; return how many went."""
    with store_session(settings) as session:
        result = session.execute(delete(RequestLog).where(RequestLog.expires_at < time.time()))
        session.commit()
        return result.rowcount or 0


def purge_finished_async_jobs(settings: Settings) -> int:
    """Delete async requests finished longer ago than their retention, with their attempts."""
    cutoff = time.time() - settings.async_job_days * 86400
    with store_session(settings) as session:
        old = select(AsyncJob.id).where(AsyncJob.finished_at < cutoff)
        session.execute(delete(AsyncAttempt).where(AsyncAttempt.job_id.in_(old)))
        result = session.execute(delete(AsyncJob).where(AsyncJob.finished_at < cutoff))
        session.commit()
        return result.rowcount or 0


def purge_ended_sign_ins(settings: Settings) -> tuple[int, int]:
    """Delete expired web sessions and failed sign-ins older than the throttle window."""
    timeouts = SessionTimeouts.of_seconds(
        settings.web_session_idle_seconds, settings.web_session_max_seconds
    )
    # The pool's registration counter (pool.accounts) shares the table and counts an hour.
    window = max(timedelta(seconds=settings.sign_in_window_seconds), REGISTER_WINDOW)
    with store_session(settings) as session:
        now = utcnow()
        removed = (
            purge_expired_sessions(session, timeouts, now),
            purge_old_failures(session, window, now),
        )
        session.commit()
        return removed


def purge(settings: Settings) -> dict[str, int]:
    """Everything past its retention that is not telemetry: request logs, finished jobs,
    expired web sessions and old failed sign-ins."""
    sessions, failures = purge_ended_sign_ins(settings)
    return {
        "request logs": purge_expired_request_logs(settings),
        "async requests": purge_finished_async_jobs(settings),
        "web sessions": sessions,
        "failed sign-ins": failures,
    }


def retention(settings: Settings) -> Retention:
    return Retention(
        minute_hours=settings.telemetry_minute_hours,
        hour_days=settings.telemetry_hour_days,
        point_days=settings.metric_point_days,
    )


def roll_up_telemetry(settings: Settings) -> None:
    """Compact telemetry and purge what is past its retention."""
    with store_session(settings) as session:
        compact_and_purge(session, retention(settings))


def _purge_job(settings: Settings) -> None:
    removed = purge(settings)
    if any(removed.values()):
        log.info("purged %s", removed)


def scan_expiring_credentials(settings: Settings, key_ring: KeyRing) -> int:
    """Record `credential.expiring` / `credential.expired` events; how many were new."""
    with store_session(settings) as session:
        return scan_credential_expiry(session, key_ring, settings.expiry_warning_days)


def _scan_job(settings: Settings, key_ring: KeyRing) -> None:
    recorded = scan_expiring_credentials(settings, key_ring)
    if recorded:
        log.info("recorded %d credential expiry events", recorded)


class NotifierDeliveries(SoloTick):
    """The notifier delivery job, every `notify_interval_ms` (too often for an engine per
    run); a run can outlast the interval (a receiver taking its 10 s)."""

    thread_name = "portcullis-deliveries"
    failure = "delivering notifier events failed"

    def run(self) -> None:
        deliver_due(self.sessions, self.settings, self.key_ring)


def start_scheduler(settings: Settings) -> BackgroundScheduler:
    key_ring, _ = load_key_ring(settings.master_keys, settings.master_key_file)
    scheduler = BackgroundScheduler(daemon=True)
    jobs = (
        ("purge", PURGE_INTERVAL_S, _purge_job, [settings]),
        ("roll-up-telemetry", settings.telemetry_compact_seconds, roll_up_telemetry, [settings]),
        ("credential-expiry", EXPIRY_SCAN_INTERVAL_S, _scan_job, [settings, key_ring]),
        (
            "notifier-deliveries",
            settings.notify_interval_ms / 1000,
            NotifierDeliveries(settings, key_ring),
            [],
        ),
        (
            "pool-scrapes",
            settings.pool_schedule_tick_ms / 1000,
            ScrapeDueSources(settings, key_ring),
            [],
        ),
        (
            "pool-checks",
            settings.pool_check_interval_ms / 1000,
            CheckDueProxies(settings, key_ring),
            [],
        ),
        (
            "pool-events",
            settings.pool_schedule_tick_ms / 1000,
            PoolEventScans(settings, key_ring),
            [],
        ),
    )
    for job_id, seconds, job, args in jobs:
        # Each runs once at start, then every `seconds`; a late tick is merged, never stacked.
        scheduler.add_job(
            job,
            "interval",
            seconds=seconds,
            args=args,
            id=job_id,
            next_run_time=datetime.now(UTC),
            coalesce=True,
            max_instances=1,
        )
    scheduler.start()
    return scheduler
