"""Background jobs of the control plane, run by APScheduler inside `run_admin.py serve`."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import delete
from sqlalchemy.orm import Session

from admin.rollups import Retention, compact_and_purge
from models import RequestLog
from models.settings import Settings
from models.store import make_engine, make_session_factory

log = logging.getLogger("portcullis.jobs")
PURGE_INTERVAL_S = 3600


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
    removed = purge_expired_request_logs(settings)
    if removed:
        log.info("purged %d expired request log entries", removed)


def start_scheduler(settings: Settings) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(
        _purge_job,
        "interval",
        seconds=PURGE_INTERVAL_S,
        args=[settings],
        id="purge-request-logs",
        next_run_time=datetime.now(UTC),
        coalesce=True,
        max_instances=1,
    )
    scheduler.add_job(
        roll_up_telemetry,
        "interval",
        seconds=settings.telemetry_compact_seconds,
        args=[settings],
        id="roll-up-telemetry",
        next_run_time=datetime.now(UTC),
        coalesce=True,
        max_instances=1,
    )
    scheduler.start()
    return scheduler
