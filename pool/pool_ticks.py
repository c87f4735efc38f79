"""The pool's event scans as scheduler jobs: `lease.expired` and `proxy.pool_low`, on the
pool's schedule tick (`pool_schedule_tick_ms`), in every admin process (claims and dedup keys
keep each report single)."""

from __future__ import annotations

import logging

from models.solo_tick import SoloTick
from pool.events import scan_expired_leases, scan_pool_low

log = logging.getLogger("portcullis.pool")


class PoolEventScans(SoloTick):
    """Report leases that ran out and a pool (or a target's share of it) running low."""

    thread_name = "portcullis-pool-events"
    failure = "pool event scan failed"

    def run(self) -> None:
        with self.sessions() as session:
            expired = scan_expired_leases(session)
            low = scan_pool_low(session, self.settings)
        if expired or low:
            log.info("pool events: %d lease.expired, %d proxy.pool_low", expired, low)
