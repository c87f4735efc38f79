"""Payload filters (issue 13): retain or destroy JSON fields of a target's 2xx answers.

A filter belongs to one scope: a credential (a target credential or a proxy
credential, as its type says), a target or a proxy. The data plane applies the
filters of a proxy's four scopes in the fixed order target credential → target
→ proxy credential → proxy, and within one scope in creation order; each
filter's output feeds the next (`models/json_paths.py` does the filtering).
"""

from __future__ import annotations

import secrets

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TimestampMixin
from models.config_version import ConfigEntity

ACTIONS = ("retain", "destroy")
MAX_PATHS = 100
# The data plane's order: (scope name, how the proxy reaches that scope's parent).
SCOPE_ORDER = ("targetCredential", "target", "proxyCredential", "proxy")


def new_filter_id() -> str:
    """A new filter id, e.g. `filt_3f9a0c1b2d4e5f60`."""
    return f"filt_{secrets.token_hex(8)}"


class PayloadFilter(ConfigEntity, TimestampMixin, Base):
    __tablename__ = "payload_filters"
    __table_args__ = (
        CheckConstraint(
            "CAST(credential_id IS NOT NULL AS INTEGER) + CAST(proxy_id IS NOT NULL AS INTEGER)"
            " + CAST(target_id IS NOT NULL AS INTEGER) = 1",
            name="one_parent",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_filter_id)
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
    action: Mapped[str] = mapped_column(String(8))
    # Path texts as the API received them (parsed again by whoever applies them).
    paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[str | None] = mapped_column(Text)

    credential = relationship("Credential", foreign_keys=[credential_id], viewonly=True)

    @property
    def parent_id(self) -> str:
        return self.credential_id or self.proxy_id or self.target_id

    @property
    def scope(self) -> str:
        """`targetCredential`, `target`, `proxyCredential` or `proxy`."""
        if self.proxy_id:
            return "proxy"
        if self.target_id:
            return "target"
        return f"{self.credential.credential_type}Credential"
