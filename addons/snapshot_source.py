"""Keeps a current `Snapshot`: polls the store's config version in a thread, rebuilds on change."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from addons.snapshot import EMPTY, ChangedWhileReading, Snapshot, build_snapshot
from models import current_config_version
from models.crypto import KeyRing
from models.store import make_session_factory

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.2


@dataclass(frozen=True)
class Freshness:
    """When the store last confirmed the snapshot current, and since when polls fail.

    Monotonic seconds; replaced whole, so a reader on another thread sees one consistent pair.
    """

    confirmed_at: float | None = None  # None: never loaded
    failing_since: float | None = None  # None: the last poll succeeded


class SnapshotSource:
    """`current` is always a complete snapshot; readers never wait and never touch the store."""

    def __init__(self, engine: Engine, key_ring: KeyRing, poll_interval: float = POLL_INTERVAL_S):
        self._sessions = make_session_factory(engine)
        self._key_ring = key_ring
        self._poll_interval = poll_interval
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: Snapshot = EMPTY
        self.installed_at: float | None = None  # epoch seconds `current` was installed
        self.store_kind: str = engine.dialect.name  # "sqlite", "postgresql"
        self.freshness = Freshness()

    def refresh(self) -> bool:
        """Rebuild if the store's version moved; return whether a new snapshot was installed."""
        with self._sessions() as session:
            if current_config_version(session) == self.current.version:
                self.freshness = Freshness(confirmed_at=time.monotonic())
                return False
            snapshot = build_snapshot(session, self._key_ring)
        with self._changed:
            self.current = snapshot
            self.installed_at = time.time()
            self._changed.notify_all()
        self.freshness = Freshness(confirmed_at=time.monotonic())
        log.info(
            "configuration version %s loaded (%d proxies)", snapshot.version, len(snapshot.proxies)
        )
        return True

    def start(self) -> None:
        """Try to load the configuration now, then keep it current in a daemon thread.

        A store that is down at start-up does not stop the thread: it keeps polling, the
        process serves nothing until the first snapshot loads (health says CONFIG_NOT_LOADED),
        then serves as usual.
        """
        self._poll()
        self._thread = threading.Thread(target=self._run, name="portcullis-config", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_for_version(self, version: int, timeout: float) -> bool:
        """Block until a snapshot of at least `version` is current (for tests and start-up)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.current.version >= version, timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval):
            self._poll()

    def _poll(self) -> None:
        """One refresh; a failure is recorded for health and logged, never raised (an
        exception escaping here would end the thread, and the process would serve its
        last snapshot for good)."""
        was_failing = self.freshness.failing_since is not None
        try:
            self.refresh()
        except ChangedWhileReading as change:
            log.info("configuration changed while it was read (%s); reading it again", change)
        except Exception as error:
            failing = self.freshness.failing_since is not None
            if not failing:
                self.freshness = Freshness(self.freshness.confirmed_at, time.monotonic())
            if self.current.version == EMPTY.version:
                # Not loaded yet: one line per outage, not a traceback every 0.2 s. A warning:
                # mitmdump exits on an error logged during start-up.
                if not failing:
                    reason = (
                        "the store is unreachable"
                        if isinstance(error, SQLAlchemyError)
                        else "it could not be built"
                    )
                    log.warning(
                        "configuration not loaded: %s (%s); retrying", reason, type(error).__name__
                    )
                return
            # Keep serving the last good snapshot; the store may be briefly unavailable.
            if not failing:
                log.exception(
                    "configuration refresh failed; keeping version %s until it works again",
                    self.current.version,
                )
        else:
            if was_failing and self.current.version != EMPTY.version:
                log.info("configuration refresh works again (version %s)", self.current.version)
