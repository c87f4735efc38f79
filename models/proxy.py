"""Proxies: a proxy credential, a target and a target credential bound together."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TimestampMixin
from models.config_version import ConfigEntity
from models.credential import Credential
from models.ids import new_id
from models.target import Target


class Proxy(ConfigEntity, TimestampMixin, Base):
    __tablename__ = "proxies"
    __table_args__ = (UniqueConstraint("client_id", "alias", name="uq_proxies_client_alias"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("proxy"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    alias: Mapped[str | None] = mapped_column(String(63), index=True)
    region: Mapped[str] = mapped_column(String(64))
    proxy_credential_id: Mapped[str] = mapped_column(ForeignKey("credentials.id"), index=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("targets.id"), index=True)
    target_credential_id: Mapped[str] = mapped_column(ForeignKey("credentials.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    default_rule_effect: Mapped[str] = mapped_column(String(8), default="allow")
    additional_headers: Mapped[dict] = mapped_column(JSON, default=dict)
    additional_query_params: Mapped[dict] = mapped_column(JSON, default=dict)
    additional_data: Mapped[dict] = mapped_column(JSON, default=dict)
    max_requests_per_minute: Mapped[int]
    max_requests_per_day: Mapped[int]
    # The largest target answer passed on (bytes): None the gateway's default
    # (`portcullis_max_response_bytes`), 0 no limit (streamed answers only; see README).
    max_response_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # The target is an MCP server: JSON-RPC requests are parsed for rules, meters and logs.
    mcp: Mapped[bool] = mapped_column(default=False, server_default=false())

    proxy_credential: Mapped[Credential] = relationship(foreign_keys=[proxy_credential_id])
    target_credential: Mapped[Credential] = relationship(foreign_keys=[target_credential_id])
    target: Mapped[Target] = relationship()
    rules = relationship("Rule", cascade="all, delete-orphan", foreign_keys="Rule.proxy_id")
