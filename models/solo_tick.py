"""Scheduler jobs that run on a thread of their own, never two runs at once."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("portcullis.jobs")


class SoloTick:
    """An APScheduler job whose tick starts `run()` only when no run is going.

    A run can outlast the interval (a slow receiver, a big source, a long check cycle): the
    tick then does nothing, so runs neither stack up nor fill the log with the scheduler's
    "skipped" warnings, and the scheduler's own threads are never held. Any exception is
    logged with `failure`, never raised: the next tick tries again.
    """

    thread_name = "portcullis-job"
    failure = "background job failed"

    def __init__(self) -> None:
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
