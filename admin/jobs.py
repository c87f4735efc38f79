"""Background jobs of the control plane, run by APScheduler inside `run_admin.py serve`."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import delete

from models import RequestLog
from models.settings import Settings
from models.store import make_engine, make_session_factory

log = logging.getLogger("portcullis.jobs")
PURGE_INTERVAL_S = 3600


def purge_expired_request_logs(settings: Settings) -> int:
    """Delete request log entries past their TTL; return how many went."""
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            result = session.execute(delete(RequestLog).where(RequestLog.expires_at < time.time()))
            session.commit()
            return result.rowcount or 0
    finally:
        engine.dispose()


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
    scheduler.start()
    return scheduler
