"""Authorization rules attached to a credential, a proxy or a target."""

from __future__ import annotations

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TimestampMixin
from models.config_version import ConfigEntity
from models.ids import new_id

PARENT_COLUMNS = ("credential_id", "proxy_id", "target_id")


class Rule(ConfigEntity, TimestampMixin, Base):
    __tablename__ = "rules"
    __table_args__ = (
        CheckConstraint(
            "CAST(credential_id IS NOT NULL AS INTEGER) + CAST(proxy_id IS NOT NULL AS INTEGER)"
            " + CAST(target_id IS NOT NULL AS INTEGER) = 1",
            name="one_parent",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("rule"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    credential_id: Mapped[str | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="CASCADE"), index=True
    )
    proxy_id: Mapped[str | None] = mapped_column(
        ForeignKey("proxies.id", ondelete="CASCADE"), index=True
    )
    target_id: Mapped[str | None] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), index=True
    )
    effect: Mapped[str] = mapped_column(String(8))
    priority: Mapped[int] = mapped_column(default=0)
    methods: Mapped[list[str]] = mapped_column(JSON, default=list)
    path_pattern: Mapped[str | None] = mapped_column(Text)
    path_presence: Mapped[str] = mapped_column(String(8), default="present")
    # [{"namePattern": str, "valuePattern": str | None, "presence": "present" | "absent"}]
    header_checks: Mapped[list[dict]] = mapped_column(JSON, default=list)
    query_checks: Mapped[list[dict]] = mapped_column(JSON, default=list)
    regex_flags: Mapped[str] = mapped_column(String(8), default="")
    notes: Mapped[str | None] = mapped_column(Text)

    credential = relationship("Credential", foreign_keys=[credential_id], viewonly=True)

    @property
    def parent_id(self) -> str:
        return self.credential_id or self.proxy_id or self.target_id
