"""One thread that owns a store connection and commits queued rows in batches.

Hooks on mitmproxy's event loop only `submit()`; nothing they do waits on the store.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from addons.histogram import Histogram, HistogramReading
from models.store import make_session_factory

log = logging.getLogger("portcullis.writer")
FLUSH_INTERVAL_S = 0.2
MAX_BATCH = 500


class BatchWriter:
    def __init__(
        self,
        engine: Engine,
        write: Callable[[Session, list], None],
        name: str,
        interval: float = FLUSH_INTERVAL_S,
    ):
        """`write` commits a batch; a batch gathers for `interval` seconds after its first item."""
        self._sessions = make_session_factory(engine)
        self._write = write
        self._interval = interval
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.name = name
        self._commit_seconds = Histogram()  # observed by the writer thread only
        self.last_batch_seconds: float | None = None

    def queued(self) -> int:
        """Items submitted and not yet taken into a batch (approximate, from any thread)."""
        return self._queue.qsize()

    def batch_seconds(self) -> HistogramReading:
        """How long each batch took to commit (with its one-by-one retries), so far."""
        return self._commit_seconds.snapshot()

    def start(self) -> None:
        self._thread.start()

    def submit(self, item) -> None:
        self._queue.put(item)

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            batch = self._take()
            if batch:
                self._flush(batch)

    def _take(self) -> list:
        try:
            batch = [self._queue.get(timeout=self._interval)]
        except queue.Empty:
            return []
        # Let a batch gather: one wake-up and one transaction for everything that
        # arrives meanwhile, instead of one per item (which costs the event loop the
        # GIL on every request).
        self._stop.wait(self._interval)
        try:
            while len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return batch

    def _flush(self, batch: list) -> None:
        """Commit `batch` in one transaction; if that fails, each item alone.

        One item the store refuses then costs that item only, not its batch.
        """
        started = time.perf_counter()
        if not self._commit(batch):
            dropped = sum(not self._commit([item]) for item in batch) if len(batch) > 1 else 1
            if dropped:
                log.error("dropped %d of %d rows the store refused", dropped, len(batch))
        self.last_batch_seconds = seconds = time.perf_counter() - started
        self._commit_seconds.observe(seconds)

    def _commit(self, items: list) -> bool:
        try:
            with self._sessions() as session:
                self._write(session, items)
                session.commit()
        except Exception:  # whatever it is: an exception escaping would end the writer thread
            log.exception("the store refused a write of %d rows", len(items))
            return False
        return True
