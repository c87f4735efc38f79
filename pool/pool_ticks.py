"""The pool's event scans as a scheduler job: `lease.expired` and `proxy.pool_low`, on the
pool's schedule tick (`pool_schedule_tick_ms`), in every admin process (claims and dedup keys
keep each report single)."""

from __future__ import annotations

import logging

from models.solo_tick import SoloTick
from pool.events import scan_expired_leases, scan_pool_low

log = logging.getLogger("portcullis.pool")


class PoolEventScans(SoloTick):
    """Report leases that ran out and a pool (or a target's share of it) running low. The two
    scans fail independently: one failing (logged) never keeps the other from running."""

    thread_name = "portcullis-pool-events"
    failure = "pool event scan failed"

    def run(self) -> None:
        scans = (
            ("lease.expired", scan_expired_leases, ()),
            ("proxy.pool_low", scan_pool_low, (self.settings,)),
        )
        for name, scan, args in scans:
            try:
                with self.sessions() as session:
                    recorded = scan(session, *args)
            except Exception:
                log.exception("the %s scan failed", name)
                continue
            if recorded:
                log.info("pool events: %d %s recorded", recorded, name)
