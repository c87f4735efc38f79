"""A batch of telemetry samples, aggregated and added to the store. Runs in the writer thread.

One batch becomes a few additive upserts: minute counters per proxy, leg and
dimension; a metric point per proxy and 10-second window with its latency
histogram; and each proxy's running totals.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import iptocc
from sqlalchemy.orm import Session

from addons.client_address import caller_address
from addons.ssrf import Network
from models.latency import bucket_of
from models.periods import period_start, point_time
from models.telemetry import (
    MetricPoint,
    MetricPointLatency,
    MetricTotal,
    TelemetryCounter,
)
from models.upsert import add_rows

UNKNOWN_COUNTRY = "XX"
POINT_COUNTS = ("requests", "errors", "bytes", "connections", "open_connections")
TOTAL_COUNTS = ("requests", "errors", "bytes", "connections")


@dataclass(frozen=True, slots=True)
class Sample:
    """One answered request, as the event loop hands it over (no formatting, no lookups)."""

    proxy_id: str
    client_id: str
    at: float  # epoch s, the caller's answer settled
    peer: str  # the connecting address ("" for none)
    forwarded_for: tuple[str, ...]  # X-Forwarded-For values, believed only from trusted peers
    proxy_status: int | None  # None: no caller waited (an async delivery attempt)
    proxy_ms: float | None
    target_status: int | None  # None: the target gave no answer
    target_ms: float | None
    bytes: int  # request and response bodies
    new_connection: bool  # the first request for this proxy on its client connection
    is_async: bool = False  # an Async API acceptance or delivery attempt
    egress: str | None = None  # the egress proxy of the target leg: `proxy` or a pool id
    tools: tuple[str, ...] = ()  # an MCP request's tools/call tool names, one per call


@dataclass(frozen=True, slots=True)
class OpenConnections:
    """A process's open client connections per proxy at the end of a metrics window."""

    captured_at: int
    counts: dict[str, tuple[str, int]]  # proxy id → (client id, open connections)


def country_of(address: str | None) -> str:
    return (iptocc.country_code(address) if address else None) or UNKNOWN_COUNTRY


def is_error(status: int) -> bool:
    return status >= 400


@dataclass
class Batch:
    now: float
    trusted: tuple[Network, ...] = ()  # proxies in front of the gateway
    counters: defaultdict = field(default_factory=lambda: defaultdict(lambda: [0, 0.0]))
    points: dict = field(default_factory=dict)
    latency: Counter = field(default_factory=Counter)
    totals: dict = field(default_factory=dict)
    # (peer, forwarded_for) → country: callers repeat within a batch, and the lookup is most
    # of a sample's cost.
    countries: dict = field(default_factory=dict)

    def add(self, item: Sample | OpenConnections) -> None:
        if isinstance(item, OpenConnections):
            for proxy_id, (client_id, count) in item.counts.items():
                self._point(proxy_id, client_id, item.captured_at)["open_connections"] += count
            return
        self._count(item)
        if item.proxy_status is None:
            return  # metrics points describe what callers got
        point = self._point(item.proxy_id, item.client_id, point_time(item.at))
        total = self.totals.setdefault(
            item.proxy_id, {"client_id": item.client_id} | dict.fromkeys(TOTAL_COUNTS, 0)
        )
        for row in (point, total):
            row["requests"] += 1
            row["errors"] += is_error(item.proxy_status)
            row["bytes"] += item.bytes
            row["connections"] += item.new_connection
        self.latency[(item.proxy_id, point["captured_at"], bucket_of(item.proxy_ms))] += 1

    def _count(self, sample: Sample) -> None:
        minute = period_start(sample.at, "minute")
        caller = (sample.peer, sample.forwarded_for)
        country = self.countries.get(caller)
        if country is None:
            country = self.countries[caller] = country_of(
                caller_address(sample.peer, sample.forwarded_for, self.trusted)
            )
        legs = (
            ("proxy", sample.proxy_status, sample.proxy_ms),
            ("target", sample.target_status, sample.target_ms),
        )
        for leg, status, ms in legs:
            if status is None or ms is None:
                continue  # the target leg is absent when the target never answered
            members = [("code", str(status)), ("country", country), ("latency", str(bucket_of(ms)))]
            if sample.is_async:
                members.append(("async", "1"))
            if leg == "target" and sample.egress is not None:
                members.append(("egress", sample.egress))
            if leg == "proxy":  # every call the caller made, whatever became of it
                members.extend(("tool", tool) for tool in sample.tools)
            for dimension, member in members:
                cell = self.counters[
                    (sample.proxy_id, sample.client_id, minute, leg, dimension, member)
                ]
                cell[0] += 1
                cell[1] += ms

    def _point(self, proxy_id: str, client_id: str, captured_at: int) -> dict:
        key = (proxy_id, captured_at)
        if key not in self.points:
            self.points[key] = {
                "proxy_id": proxy_id,
                "captured_at": captured_at,
                "client_id": client_id,
            } | dict.fromkeys(POINT_COUNTS, 0)
        return self.points[key]

    def write(self, session: Session) -> None:
        counter_rows = [
            {
                "proxy_id": proxy_id,
                "client_id": client_id,
                "resolution": "minute",
                "period": minute,
                "leg": leg,
                "dimension": dimension,
                "member": member,
                "count": count,
                "total_ms": total_ms,
                "updated_at": self.now,
            }
            for (proxy_id, client_id, minute, leg, dimension, member), (count, total_ms) in sorted(
                self.counters.items()
            )
        ]  # fmt: skip  (sorted: writers in several processes take row locks in one order)
        add_rows(
            session,
            TelemetryCounter.__table__,
            counter_rows,
            ("count", "total_ms"),
            ("updated_at",),
        )
        points = [self.points[key] for key in sorted(self.points)]
        add_rows(session, MetricPoint.__table__, points, POINT_COUNTS)
        latency_rows = [
            {"proxy_id": proxy_id, "captured_at": at, "bucket": bucket, "count": count}
            for (proxy_id, at, bucket), count in sorted(self.latency.items())
        ]
        add_rows(session, MetricPointLatency.__table__, latency_rows, ("count",))
        total_rows = [{"proxy_id": proxy_id} | row for proxy_id, row in sorted(self.totals.items())]
        add_rows(session, MetricTotal.__table__, total_rows, TOTAL_COUNTS)
