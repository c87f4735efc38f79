"""Scheduler jobs over the store that run on a thread of their own, never two runs at once."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from models.crypto import KeyRing
from models.settings import Settings
from models.store import make_engine, make_session_factory

log = logging.getLogger("portcullis.jobs")


class SoloTick:
    """An APScheduler job whose tick starts `run()` only when no run is going.

    A run can outlast the interval (a slow receiver, a big source, a long check cycle): the
    tick then does nothing, so runs neither stack up nor fill the log with the scheduler's
    "skipped" warnings, and the scheduler's own threads are never held. Any exception is
    logged with `failure`, never raised: the next tick tries again. `sessions` is on one
    engine kept for the scheduler's life (a tick is too frequent for an engine per run).
    """

    thread_name = "portcullis-job"
    failure = "background job failed"

    def __init__(self, settings: Settings, key_ring: KeyRing) -> None:
        self.settings = settings
        self.key_ring = key_ring
        self.sessions = make_session_factory(make_engine(settings.database_url))
        self._running = threading.Lock()
        self._runner = ThreadPoolExecutor(1, thread_name_prefix=self.thread_name)

    def __call__(self) -> None:
        if self._running.acquire(blocking=False):
            self._runner.submit(self._run)

    def _run(self) -> None:
        try:
            self.run()
        except Exception:
            log.exception(self.failure)
        finally:
            self._running.release()

    def run(self) -> None:
        raise NotImplementedError
