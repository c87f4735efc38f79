"""Scraping sources on their cron schedules.

The tick (every `pool_schedule_tick_ms`) reads only `next_scrape_at`: every active source
whose time has passed and whose scrape lease is free is scraped, one after another, on a
thread of the tick's own. After each scrape (or failure) `next_scrape_at` moves to the
schedule's next time (pool/scrape.py), so a source runs once per cron time however many
admin processes tick: they compete for the same lease in the store.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import or_, select

from models.base import utcnow
from models.crypto import KeyRing
from models.pool import PoolSource
from models.settings import Settings
from models.solo_tick import SoloTick
from pool.errors import PoolError
from pool.scrape import Sessions, claimant_id, scrape_source

log = logging.getLogger("portcullis.pool.schedule")

MAX_PER_TICK = 50


def due_sources(sessions: Sessions, limit: int = MAX_PER_TICK) -> list[str]:
    """Ids of the active sources due a scrape now, whose lease nobody holds."""
    now = time.time()
    with sessions() as session:
        query = (
            select(PoolSource.id)
            .where(
                PoolSource.is_active.is_(True),
                PoolSource.next_scrape_at <= utcnow(),
                or_(
                    PoolSource.scrape_claimed_until.is_(None),
                    PoolSource.scrape_claimed_until < now,
                ),
            )
            .order_by(PoolSource.next_scrape_at)
            .limit(limit)
        )
        return list(session.scalars(query))


def scrape_due(
    sessions: Sessions, settings: Settings, key_ring: KeyRing, claimant: str
) -> list[dict]:
    """Scrape every source due now; the results of those this process scraped."""
    results = []
    for source_id in due_sources(sessions):
        try:
            results.append(
                scrape_source(sessions, settings, key_ring, source_id, claimant, due_only=True)
            )
        except PoolError as exc:
            if exc.code != "SCRAPE_IN_PROGRESS":  # another process took it first
                log.warning("scraping source %s failed: %s %s", source_id, exc.code, exc.message)
        except Exception:  # one source's unexpected failure must not stop the others
            log.exception("scraping source %s failed", source_id)
    return results


class ScrapeDueSources(SoloTick):
    """The scheduler's tick (every `pool_schedule_tick_ms`): scrape every source due (a slow
    source can outlast many ticks)."""

    thread_name = "portcullis-scrapes"
    failure = "scraping due pool sources failed"

    def __init__(self, settings: Settings, key_ring: KeyRing):
        super().__init__(settings, key_ring)
        self.claimant = claimant_id()

    def run(self) -> None:
        scrape_due(self.sessions, self.settings, self.key_ring, self.claimant)
