"""Telemetry records (seed 000) and metrics points (seed 004) built from stored sums.

Everything derived (averages, rates, percentiles, the EWMA, cumulative
values) is computed here, on read; the store keeps only additive sums.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.base import isoformat_z
from models.latency import bucket_label, percentile
from models.periods import POINT_SECONDS, skey

EWMA_ALPHA = 0.3  # weight of the newest period in `ewmaResponseTime`
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
MAX_POINTS = 5000
CUMULATIVE = ("requests", "errors", "bytes", "connections")


def _rate(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


@dataclass
class PeriodSums:
    """The sums of one period, keyed as seed 000 keys its maps."""

    count: Counter = field(default_factory=Counter)  # leg → requests
    success: Counter = field(default_factory=Counter)
    error: Counter = field(default_factory=Counter)
    total_ms: Counter = field(default_factory=Counter)
    code_count: Counter = field(default_factory=Counter)  # "200:proxy" → requests
    code_ms: Counter = field(default_factory=Counter)
    country_count: Counter = field(default_factory=Counter)  # "US:proxy" → requests
    country_ms: Counter = field(default_factory=Counter)
    latency: defaultdict = field(default_factory=lambda: defaultdict(Counter))  # leg → histogram
    async_count: Counter = field(default_factory=Counter)  # leg → Async API requests
    egress_count: Counter = field(default_factory=Counter)  # "proxy" / pool proxy id → requests
    egress_ms: Counter = field(default_factory=Counter)
    tool_count: Counter = field(default_factory=Counter)  # MCP tool name → tools/call calls
    tool_ms: Counter = field(default_factory=Counter)

    def add(self, leg: str, dimension: str, member: str, count: int, total_ms: float) -> None:
        key = f"{member}:{leg}"
        if dimension == "code":
            status = int(member)
            self.count[leg] += count
            self.total_ms[leg] += total_ms
            self.success[leg] += count if 200 <= status < 400 else 0
            self.error[leg] += count if status >= 400 else 0
            self.code_count[key] += count
            self.code_ms[key] += total_ms
        elif dimension == "country":
            self.country_count[key] += count
            self.country_ms[key] += total_ms
        elif dimension == "latency":
            self.latency[leg][int(member)] += count
        elif dimension == "async":
            self.async_count[leg] += count
        elif dimension == "egress":
            self.egress_count[member] += count
            self.egress_ms[member] += total_ms
        elif dimension == "tool":
            self.tool_count[member] += count
            self.tool_ms[member] += total_ms


def telemetry_records(
    rows: Iterable[tuple], resolution: str, owner_fields: Mapping[str, str]
) -> list[dict]:
    """Records in time order from `(period, leg, dimension, member, count, total_ms)` rows.

    `owner_fields` names the record's owner: `{"pKey": id, "proxyId": id}` or
    `{"pKey": id, "clientId": id}`.
    """
    periods: defaultdict[int, PeriodSums] = defaultdict(PeriodSums)
    for period, leg, dimension, member, count, total_ms in rows:
        periods[period].add(leg, dimension, member, count, total_ms)
    records, ewma = [], None
    for period in sorted(periods):
        sums = periods[period]
        if sums.count["proxy"]:
            average = sums.total_ms["proxy"] / sums.count["proxy"]
            ewma = average if ewma is None else EWMA_ALPHA * average + (1 - EWMA_ALPHA) * ewma
        records.append(_record(period, resolution, owner_fields, sums, ewma))
    return records


def _record(period: int, resolution: str, owner: Mapping, sums: PeriodSums, ewma) -> dict:
    def rounded(counter: Counter, digits: int = 3) -> dict:
        return {key: round(value, digits) for key, value in sorted(counter.items())}

    legs = sorted(sums.count, key=("proxy", "target").index)
    return {
        "pKey": owner["pKey"],
        "sKey": skey(period, resolution),
        **{name: value for name, value in owner.items() if name != "pKey"},
        "startsAt": isoformat_z(datetime.fromtimestamp(period, UTC)),
        "countMap": {leg: sums.count[leg] for leg in legs},
        "successCountMap": {leg: sums.success[leg] for leg in legs},
        "errorCountMap": {leg: sums.error[leg] for leg in legs},
        "totalResponseTimeMap": {leg: round(sums.total_ms[leg], 3) for leg in legs},
        "codeCountMap": dict(sorted(sums.code_count.items())),
        "codeTotalRTMap": rounded(sums.code_ms),
        "countryCountMap": dict(sorted(sums.country_count.items())),
        "countryTotalRTMap": rounded(sums.country_ms),
        "averageResponseTimeMap": {leg: _rate(sums.total_ms[leg], sums.count[leg]) for leg in legs},
        "successRateMap": {leg: _rate(sums.success[leg], sums.count[leg]) for leg in legs},
        "errorRateMap": {leg: _rate(sums.error[leg], sums.count[leg]) for leg in legs},
        "countryAverageRTMap": {
            key: _rate(sums.country_ms[key], count)
            for key, count in sorted(sums.country_count.items())
        },
        "responseTimeBucketCountMap": {
            f"{bucket_label(bucket)}:{leg}": count
            for leg in legs
            for bucket, count in sorted(sums.latency[leg].items())
        },
        "percentileResponseTimeMap": {
            f"{name}:{leg}": round(percentile(sums.latency[leg], q), 3)
            for leg in legs
            for name, q in PERCENTILES
            if sums.latency[leg]
        },
        "asyncCountMap": {leg: sums.async_count[leg] for leg in legs if sums.async_count[leg]},
        "egressCountMap": dict(sorted(sums.egress_count.items())),
        "egressTotalRTMap": rounded(sums.egress_ms),
        "toolCountMap": dict(sorted(sums.tool_count.items())),
        "toolTotalRTMap": rounded(sums.tool_ms),
        "ewmaResponseTime": None if ewma is None else round(ewma, 4),
    }


@dataclass(frozen=True)
class StoredPoint:
    captured_at: int
    requests: int
    errors: int
    bytes: int
    connections: int
    open_connections: int
    latency: Mapping[int, int]


def minimum_step(start: int, end: int) -> int:
    """The smallest step (a multiple of 10 s) that covers [start, end] in MAX_POINTS points."""
    span = max(end - start, 0)
    step = max(POINT_SECONDS, -(-span // (MAX_POINTS * POINT_SECONDS)) * POINT_SECONDS)
    while span // step + 1 > MAX_POINTS:
        step += POINT_SECONDS
    return step


def metric_points(
    points: list[StoredPoint], totals_after: Mapping[str, int], start: int, step: int | None
) -> list[dict]:
    """Seed 004's points in time order; merged into `step`-second groups when a step is given.

    `totals_after` holds the proxy's cumulative totals as they stood after the
    last of `points` (totals now, less whatever came after the range).
    """
    cumulative = []
    running = dict(totals_after)
    for point in reversed(points):
        cumulative.append(dict(running))
        for name in CUMULATIVE:
            running[name] -= getattr(point, name)
    cumulative.reverse()
    if step is None:
        return [
            _point(p.captured_at, totals, p.open_connections, p.latency, POINT_SECONDS)
            for p, totals in zip(points, cumulative, strict=True)
        ]
    groups: dict[int, list[int]] = defaultdict(list)
    for index, point in enumerate(points):
        groups[(point.captured_at - start) // step].append(index)
    merged = []
    for group, members in sorted(groups.items()):
        histogram: Counter = Counter()
        for index in members:
            histogram.update(points[index].latency)
        last = members[-1]
        merged.append(
            _point(start + group * step, cumulative[last], points[last].open_connections,
                   histogram, step)
        )  # fmt: skip
    return merged


def _point(captured_at: int, totals: Mapping, open_connections: int, latency, step: int) -> dict:
    first, ninetieth = percentile(latency, 0.01), percentile(latency, 0.9)
    return {
        "capturedAt": isoformat_z(datetime.fromtimestamp(captured_at, UTC)),
        "ttl": totals["connections"],
        "opn": open_connections,
        "rt1Ms": None if first is None else round(first, 3),
        "p90Ms": None if ninetieth is None else round(ninetieth, 3),
        "requests": totals["requests"],
        "errors": totals["errors"],
        "bytes": totals["bytes"],
        "stepSeconds": step,
    }
