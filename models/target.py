"""Targets: the upstream APIs proxies forward to."""

from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TimestampMixin
from models.config_version import ConfigEntity
from models.ids import new_id


class Target(ConfigEntity, TimestampMixin, Base):
    __tablename__ = "targets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("target"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str] = mapped_column(String(2048))
    test_path: Mapped[str | None] = mapped_column(String(2048))
    region: Mapped[str] = mapped_column(String(64))
    default_rule_effect: Mapped[str] = mapped_column(String(8), default="allow")
    active: Mapped[bool] = mapped_column(default=True)
    # How requests leave for the target (models/egress.py): None = directly; else
    # {"mode": "proxy", ...} or {"mode": "pool", ...}, never holding a credential.
    egress: Mapped[dict | None] = mapped_column(JSON)
    # The fixed egress proxy's username and password, sealed (AAD "{id}:egress").
    egress_secret_key_id: Mapped[str | None] = mapped_column(String(64))
    egress_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)

    rules = relationship("Rule", cascade="all, delete-orphan", foreign_keys="Rule.target_id")
