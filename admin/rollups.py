"""Telemetry compaction (minute → hour → day → month) and the retention of telemetry and points.

A parent period is always recomputed whole from its children and replaces
what was there, so compaction is idempotent: running it twice, or over a
period that is still being written to, never counts anything twice. Each run
recomputes the parents of every child row touched since the last run (less
a margin for writes committed late), so late writes are picked up next time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import delete, distinct, func, insert, literal, select
from sqlalchemy.orm import Session

from models import MetricPoint, MetricPointLatency, TelemetryCounter, TelemetryWatermark
from models.periods import PARENT, period_end, period_start

log = logging.getLogger("portcullis.rollups")
# Writers stamp `updated_at` just before committing; anything committed within
# this margin after a run started is still seen by the next run.
LATE_COMMIT_MARGIN_S = 120
DAY_S = 86400


@dataclass(frozen=True)
class Retention:
    minute_hours: int = 48
    hour_days: int = 90
    point_days: int = 7


def compact(session: Session, now: float | None = None) -> dict[str, int]:
    """Recompute every parent period whose children changed; return how many per resolution."""
    now = time.time() if now is None else now
    recomputed = {}
    for child, parent in PARENT.items():
        since = _watermark(session, parent) - LATE_COMMIT_MARGIN_S
        touched = session.execute(
            select(distinct(TelemetryCounter.proxy_id), TelemetryCounter.period).where(
                TelemetryCounter.resolution == child, TelemetryCounter.updated_at >= since
            )
        ).all()
        parents = sorted({(proxy_id, period_start(period, parent)) for proxy_id, period in touched})
        for proxy_id, start in parents:
            _recompute(session, proxy_id, child, parent, start, now)
        session.merge(TelemetryWatermark(resolution=parent, compacted_at=now))
        session.commit()
        recomputed[parent] = len(parents)
    return recomputed


def _watermark(session: Session, resolution: str) -> float:
    mark = session.get(TelemetryWatermark, resolution)
    return mark.compacted_at if mark else 0.0


def _recompute(
    session: Session, proxy_id: str, child: str, parent: str, start: int, now: float
) -> None:
    """Replace the parent period's rows with the sums of its children's."""
    counter = TelemetryCounter
    session.execute(
        delete(counter).where(
            counter.proxy_id == proxy_id, counter.resolution == parent, counter.period == start
        )
    )
    sums = (
        select(
            counter.proxy_id,
            literal(parent),
            literal(start),
            counter.leg,
            counter.dimension,
            counter.member,
            func.max(counter.client_id),
            func.sum(counter.count),
            func.sum(counter.total_ms),
            literal(now),
        )
        .where(
            counter.proxy_id == proxy_id,
            counter.resolution == child,
            counter.period >= start,
            counter.period < period_end(start, parent),
        )
        .group_by(counter.proxy_id, counter.leg, counter.dimension, counter.member)
    )
    columns = ["proxy_id", "resolution", "period", "leg", "dimension", "member"]
    columns += ["client_id", "count", "total_ms", "updated_at"]
    session.execute(insert(counter).from_select(columns, sums))


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
    recomputed = compact(session)
    removed = purge(session, retention)
    if any(recomputed.values()) or any(removed.values()):
        log.info("telemetry: recomputed %s, purged %s", recomputed, removed)
