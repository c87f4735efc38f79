"""Telemetry compaction (minute → hour → day → month) and the retention of telemetry and points.

A parent period is always recomputed whole from its children and replaces
what was there, so compaction is idempotent: running it twice, or over a
period that is still being written to, never counts anything twice. Each run
recomputes the parents of every child row touched since the last run (less
a margin for writes committed late), so late writes are picked up next time.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from models import MetricPoint, MetricPointLatency, TelemetryCounter, TelemetryWatermark
from models.aggregates import integer_sum
from models.periods import PARENT, period_end, period_start

log = logging.getLogger("portcullis.rollups")
# Writers stamp `updated_at` just before committing; anything committed within
# this margin after a run started is still seen by the next run.
LATE_COMMIT_MARGIN_S = 120
DAY_S = 86400
# PostgreSQL advisory lock serializing compaction runs (the scheduler's, a CLI run, another
# admin host): two runs replacing the same parent period at once would both insert it.
COMPACTION_LOCK = 0x706F7274  # "port"


@dataclass(frozen=True)
class Retention:
    minute_hours: int = 48
    hour_days: int = 90
    point_days: int = 7


def compact(session: Session, now: float | None = None) -> dict[str, int]:
    """Recompute every parent period whose children changed; return how many were rewritten."""
    now = time.time() if now is None else now
    rewritten = {}
    for child, parent in PARENT.items():
        _exclusive(session)  # until this level's commit
        since = _watermark(session, parent) - LATE_COMMIT_MARGIN_S
        touched = session.execute(
            select(TelemetryCounter.proxy_id, TelemetryCounter.period)
            .where(TelemetryCounter.resolution == child, TelemetryCounter.updated_at >= since)
            .distinct()
        ).all()
        parents = sorted({(proxy_id, period_start(period, parent)) for proxy_id, period in touched})
        rewritten[parent] = sum(
            _recompute(session, proxy_id, child, parent, start, now) for proxy_id, start in parents
        )
        session.merge(TelemetryWatermark(resolution=parent, compacted_at=now))
        session.commit()
    return rewritten


def _exclusive(session: Session) -> None:
    """Wait until no other compaction runs, for the rest of this transaction.

    SQLite needs nothing: it lets one writer at a time, and a run that read before another
    run's commit cannot write on that stale view (the run fails, and the next one redoes it).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(COMPACTION_LOCK)))


def _watermark(session: Session, resolution: str) -> float:
    mark = session.get(TelemetryWatermark, resolution)
    return mark.compacted_at if mark else 0.0


Sums = dict[tuple[str, str, str], tuple[str, int, float]]  # (leg, dimension, member) → values


def _sums(session: Session, proxy_id: str, resolution: str, start: int, end: int) -> Sums:
    counter = TelemetryCounter
    rows = session.execute(
        select(
            counter.leg,
            counter.dimension,
            counter.member,
            func.max(counter.client_id),
            integer_sum(counter.count),
            func.sum(counter.total_ms),
        )
        .where(
            counter.proxy_id == proxy_id,
            counter.resolution == resolution,
            counter.period >= start,
            counter.period < end,
        )
        .group_by(counter.leg, counter.dimension, counter.member)
    )
    return {(leg, dim, member): (client, count, ms) for leg, dim, member, client, count, ms in rows}


def _same(fresh: Sums, stored: Sums) -> bool:
    return fresh.keys() == stored.keys() and all(
        fresh[key][1] == stored[key][1] and math.isclose(fresh[key][2], stored[key][2])
        for key in fresh
    )


def _recompute(
    session: Session, proxy_id: str, child: str, parent: str, start: int, now: float
) -> bool:
    """Replace the parent period's rows with the sums of its children's, if they differ.

    Unchanged parents are left alone, so their `updated_at` does not make the
    next level recompute them again.
    """
    end = period_end(start, parent)
    fresh = _sums(session, proxy_id, child, start, end)
    if _same(fresh, _sums(session, proxy_id, parent, start, start + 1)):
        return False
    counter = TelemetryCounter
    session.execute(
        delete(counter).where(
            counter.proxy_id == proxy_id, counter.resolution == parent, counter.period == start
        )
    )
    rows = [
        {
            "proxy_id": proxy_id,
            "resolution": parent,
            "period": start,
            "leg": leg,
            "dimension": dimension,
            "member": member,
            "client_id": client_id,
            "count": count,
            "total_ms": total_ms,
            "updated_at": now,
        }
        for (leg, dimension, member), (client_id, count, total_ms) in sorted(fresh.items())
    ]
    if rows:
        session.execute(insert(counter), rows)
    return True


def purge(session: Session, retention: Retention, now: float | None = None) -> dict[str, int]:
    """Delete minute and hour counters and metric points past their retention."""
    now = time.time() if now is None else now
    removed = {}
    for resolution, keep_s in (
        ("minute", retention.minute_hours * 3600),
        ("hour", retention.hour_days * DAY_S),
    ):
        result = session.execute(
            delete(TelemetryCounter).where(
                TelemetryCounter.resolution == resolution, TelemetryCounter.period < now - keep_s
            )
        )
        removed[resolution] = result.rowcount or 0
    cutoff = now - retention.point_days * DAY_S
    session.execute(delete(MetricPointLatency).where(MetricPointLatency.captured_at < cutoff))
    result = session.execute(delete(MetricPoint).where(MetricPoint.captured_at < cutoff))
    removed["points"] = result.rowcount or 0
    session.commit()
    return removed


def compact_and_purge(session: Session, retention: Retention) -> None:
    """The scheduled job: compaction first, so nothing is purged before it is rolled up."""
    rewritten = compact(session)
    removed = purge(session, retention)
    if any(rewritten.values()) or any(removed.values()):
        log.info("telemetry: rewrote %s, purged %s", rewritten, removed)
