"""Telemetry compaction: idempotent, picks up late writes, safe over live traffic; retention."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select

from addons.telemetry_batch import Batch, Sample
from admin.rollups import Retention, compact, purge
from models import MetricPoint, TelemetryCounter
from models.aggregates import integer_sum
from models.store import make_engine, make_session_factory
from tests.proxy_support import CALLER_KEY, Setup, call, wait_until_served
from tests.test_telemetry import wait_for_count

AUTH = {"X-API-Key": CALLER_KEY}


def epoch(*parts) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


def sample(at: float, status: int = 200, ms: float = 12.0, proxy: str = "proxy_a") -> Sample:
    return Sample(
        proxy_id=proxy,
        client_id="cli_a",
        at=at,
        peer="8.8.8.8",
        forwarded_for=(),
        proxy_status=status,
        proxy_ms=ms,
        target_status=status,
        target_ms=ms - 1,
        bytes=100,
        new_connection=False,
    )


def write(sessions, samples: list[Sample], now: float) -> None:
    """What the data plane's writer does with a batch."""
    batch = Batch(now=now)
    for item in samples:
        batch.add(item)
    with sessions() as session:
        batch.write(session)
        session.commit()


def sums(sessions, resolution: str) -> dict:
    """Counts and total times per (leg, dimension, member) over all periods of `resolution`."""
    counter = TelemetryCounter
    with sessions() as session:
        rows = session.execute(
            select(
                counter.leg,
                counter.dimension,
                counter.member,
                integer_sum(counter.count),
                func.sum(counter.total_ms),
            )
            .where(counter.resolution == resolution)
            .group_by(counter.leg, counter.dimension, counter.member)
        ).all()
    # Rounded here: PostgreSQL has no round(double precision, integer).
    return {(leg, dim, member): (count, round(ms, 6)) for leg, dim, member, count, ms in rows}


def periods(sessions, resolution: str) -> list[int]:
    with sessions() as session:
        query = select(TelemetryCounter.period).where(TelemetryCounter.resolution == resolution)
        return sorted(set(session.scalars(query)))


# Around a month boundary: two months, two days, three hours.
TRAFFIC = [
    sample(epoch(2026, 10, 31, 22, 59, 30), 200, 5),
    sample(epoch(2026, 10, 31, 23, 1, 0), 404, 40),
    sample(epoch(2026, 10, 31, 23, 59, 59), 200, 7),
    sample(epoch(2026, 11, 1, 0, 0, 0), 500, 300),
    sample(epoch(2026, 11, 1, 0, 0, 1), 200, 9, proxy="proxy_b"),
]
NOW = epoch(2026, 11, 1, 0, 5)


def test_compaction_twice_gives_the_same_totals_at_every_resolution(sessions):
    write(sessions, TRAFFIC, NOW)
    minutes = sums(sessions, "minute")
    assert sum(count for (leg, dim, _), (count, _) in minutes.items() if dim == "code") == 10
    rewritten = [compact(sessions(), now=NOW + run) for run in range(2)]
    for resolution in ("hour", "day", "month"):
        assert sums(sessions, resolution) == minutes, resolution
    assert rewritten == [{"hour": 4, "day": 3, "month": 3}, {"hour": 0, "day": 0, "month": 0}]
    assert periods(sessions, "hour") == [
        epoch(2026, 10, 31, 22), epoch(2026, 10, 31, 23), epoch(2026, 11, 1, 0)
    ]  # fmt: skip
    assert periods(sessions, "month") == [epoch(2026, 10, 1), epoch(2026, 11, 1)]


def test_a_late_write_is_rolled_up_next_time_and_never_twice(sessions):
    write(sessions, TRAFFIC, NOW)
    compact(sessions(), now=NOW)
    # A slow process adds to a minute that was already compacted.
    write(sessions, [sample(epoch(2026, 10, 31, 23, 1, 30), 404, 60)], NOW + 30)
    compact(sessions(), now=NOW + 60)
    compact(sessions(), now=NOW + 120)
    minutes = sums(sessions, "minute")
    assert minutes[("proxy", "code", "404")] == (2, 100.0)
    for resolution in ("hour", "day", "month"):
        assert sums(sessions, resolution) == minutes, resolution


def test_purge_drops_old_minutes_and_points_after_they_are_rolled_up(sessions):
    old = NOW - 3 * 86400
    write(sessions, [sample(old), sample(NOW - 60)], NOW)
    compact(sessions(), now=NOW)
    removed = purge(sessions(), Retention(minute_hours=48, hour_days=90, point_days=7), now=NOW)
    assert removed["minute"] > 0 and removed["points"] == 0
    assert periods(sessions, "minute") == [int(NOW - 60) // 60 * 60]
    assert sums(sessions, "day")[("proxy", "code", "200")] == (2, 24.0), "rolled up, kept"
    removed = purge(sessions(), Retention(point_days=1), now=NOW)
    assert removed["points"] == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(MetricPoint)) == 1


def test_compaction_over_live_traffic_counts_every_request_once(
    admin_server, api, upstream, gateway
):
    made = Setup(api, upstream)
    wait_until_served(gateway, f"/api/{made.id}/status/200", AUTH)
    sent = 60
    traffic = threading.Thread(
        target=lambda: [
            call(gateway, "GET", f"/api/{made.id}/status/200", headers=AUTH) for _ in range(sent)
        ]
    )
    engine = make_engine(admin_server.database_url)
    sessions = make_session_factory(engine)
    try:
        traffic.start()
        runs = 0
        while traffic.is_alive() or runs < 2:  # compaction keeps running while requests land
            compact(sessions())
            runs += 1
        traffic.join()
        path = f"{made.base}/proxies/{made.id}/telemetry"
        wait_for_count(api, path, sent + 1, interval="minute")
        for _ in range(2):
            compact(sessions())
            for interval in ("minute", "hour", "day", "month"):
                records = api.get(path, params={"interval": interval}).json()["telemetry"]
                assert sum(r["countMap"]["proxy"] for r in records) == sent + 1, interval
    finally:
        engine.dispose()
