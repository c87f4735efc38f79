"""Request log entries written by the data plane (seed 001's shape), read by the Requests API."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class RequestLog(Base):
    """One request through a proxy, allowed or not. No foreign keys: logs outlive configuration."""

    __tablename__ = "request_logs"
    __table_args__ = (Index("ix_request_logs_proxy_processed", "proxy_id", "processed_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the request id
    proxy_id: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[str | None] = mapped_column(String(32))
    processed_at: Mapped[int] = mapped_column(BigInteger)  # epoch milliseconds, received
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)  # epoch seconds (`TTL`)
    proxy_data: Mapped[dict] = mapped_column(JSON)
    target_data: Mapped[dict | None] = mapped_column(JSON)
    validation_data: Mapped[dict] = mapped_column(JSON)
    request_body: Mapped[str | None] = mapped_column(Text)  # bounded and redacted
    response_body: Mapped[str | None] = mapped_column(Text)  # bounded and redacted


# Kept in `proxy_data` (no migration), shown only as a detail's top-level `responseHeaders`.
RESPONSE_HEADERS = "responseHeaders"


def shown_proxy_data(proxy_data: dict) -> dict:
    """`proxyData` as the Requests API (and the access log) show it: without the answer's
    headers, which are a field of their own."""
    return {key: value for key, value in proxy_data.items() if key != RESPONSE_HEADERS}


def duration_ms(proxy_data: dict) -> int | None:
    """The detail's `duration`: milliseconds the gateway took (the proxy leg)."""
    seconds = proxy_data.get("duration")
    return None if seconds is None else round(seconds * 1000)
