"""Usage meters of a proxy (issue 13): what they count, which requests, and their limits.

A `request_count` meter adds 1 per matching request; a `response_value` meter
adds a number read from the target's answer (a JSON path into the body, or a
header). `meterMode: "conditional"` meters count only requests matching every
predicate (method, path, header and query checks as rules have them, and JSON
body fields). Limits are per UTC window (minute, hour, day, month); a meter
without limits only counts.

`MeterUsage` is the read-out the Core API serves: the data plane writes each
window's count there in batches (it is not configuration, so no version bump).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, TimestampMixin, UTCDateTime
from models.config_version import ConfigEntity
from models.ids import new_id

METER_TYPES = ("request_count", "response_value")
METER_MODES = ("all", "conditional")
EXTRACTION_LOCATIONS = ("body", "header")


class Meter(ConfigEntity, TimestampMixin, Base):
    __tablename__ = "meters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("meter"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    proxy_id: Mapped[str] = mapped_column(ForeignKey("proxies.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    meter_type: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    mode: Mapped[str] = mapped_column(String(16), default="all")
    region: Mapped[str] = mapped_column(String(64))
    # {"methods": [...], "pathPattern": str, "pathPresence": ..., "headerChecks": [...],
    #  "queryChecks": [...], "bodyChecks": [{"path": str, "equals": value} |
    #  {"path": str, "valuePattern": str}], "regexFlags": str}
    predicates: Mapped[dict] = mapped_column(JSON, default=dict)
    # {"location": "body", "path": "usage.total_tokens"} | {"location": "header", "name": "x"}
    extraction: Mapped[dict | None] = mapped_column(JSON)
    # {"minute": int, "hour": int, "day": int, "month": int}, any subset
    limits: Mapped[dict] = mapped_column(JSON, default=dict)
    # How a response_value meter's limit refuses (issue 18): "reached" once the window's count
    # has reached it (the answer that crosses it is let through, as most gateways do);
    # "estimate" also when the average answer counted so far would take it past (issue 13).
    # Meters created before the choice existed keep "estimate".
    limit_mode: Mapped[str] = mapped_column(
        String(16), default="reached", server_default="estimate"
    )


class MeterUsage(Base):
    """One window's count of one meter, as the data plane last wrote it."""

    __tablename__ = "meter_usage"

    meter_id: Mapped[str] = mapped_column(
        ForeignKey("meters.id", ondelete="CASCADE"), primary_key=True
    )
    window: Mapped[str] = mapped_column(String(8), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds
    window_end: Mapped[int] = mapped_column(BigInteger)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
