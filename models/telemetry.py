"""Telemetry counters and metrics history, written by the data plane, read by the admin.

Every row is a sum that can only grow by addition (see `models/upsert.py`), so
several proxy processes writing to one store add up rather than overwrite.
Like request logs, these rows have no foreign keys: history outlives configuration.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

LEGS = ("proxy", "target")
# dimension → what `member` holds
DIMENSIONS = {
    "code": "HTTP status",
    "country": "ISO 3166-1 alpha-2",
    "latency": "bucket index",
    "async": "1: Async API traffic (also counted under code, country and latency)",
    "egress": "the egress that carried it: `proxy` (a fixed proxy) or a pool proxy's id",
    "tool": "an MCP tools/call's tool name (proxies marked `mcp`)",
}


class TelemetryCounter(Base):
    """How many requests, and their total response time, in one period, leg and dimension.

    Per request and leg there is one `code` row (its status), one `country` row
    (the caller's) and one `latency` row (its histogram bucket). Totals,
    successes and errors are sums over the `code` rows. The data plane writes
    `minute` rows; compaction derives `hour`, `day` and `month` rows from them.
    """

    __tablename__ = "telemetry_counters"
    __table_args__ = (
        Index("ix_telemetry_counters_client", "client_id", "resolution", "period"),
        Index("ix_telemetry_counters_touched", "resolution", "updated_at"),
    )

    proxy_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    resolution: Mapped[str] = mapped_column(String(8), primary_key=True)
    period: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch s, period start
    leg: Mapped[str] = mapped_column(String(8), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(8), primary_key=True)
    member: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(BigInteger)
    total_ms: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)  # epoch s; what compaction looks for


class TelemetryWatermark(Base):
    """Until when (epoch s) the children of a resolution were compacted into it."""

    __tablename__ = "telemetry_watermarks"

    resolution: Mapped[str] = mapped_column(String(8), primary_key=True)
    compacted_at: Mapped[float] = mapped_column(Float)


class MetricPoint(Base):
    """What happened to a proxy in one 10-second window ending at `captured_at` (seed 004).

    Counts are for the window (cumulative values are derived on read from
    `MetricTotal`); `open_connections` is the sum of each process's sample.
    """

    __tablename__ = "metric_points"

    proxy_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    captured_at: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch s
    client_id: Mapped[str] = mapped_column(String(32))
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    connections: Mapped[int] = mapped_column(BigInteger)  # new client connections
    open_connections: Mapped[int] = mapped_column(BigInteger)


class MetricPointLatency(Base):
    """The latency histogram of one metric point, one row per non-empty bucket."""

    __tablename__ = "metric_point_latency"

    proxy_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    captured_at: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class MetricTotal(Base):
    """A proxy's totals since it first served, never purged: the base of cumulative values."""

    __tablename__ = "metric_totals"

    proxy_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(32))
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    connections: Mapped[int] = mapped_column(BigInteger)
