"""Payload filters (issue 13): retain or destroy JSON fields of a target's 2xx answers.

A filter belongs to one scope: a credential (a target credential or a proxy
credential, as its type says), a target or a proxy. The data plane applies the
filters of a proxy's four scopes in the fixed order target credential → target
→ proxy credential → proxy, and within one scope in creation order; each
filter's output feeds the next (`models/json_paths.py` does the filtering).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, TimestampMixin
from models.config_version import ConfigEntity
from models.json_paths import JsonPath, destroy, parse_paths, retain
from models.scoped import OneParent

if TYPE_CHECKING:
    from models.proxy import Proxy

ACTIONS = ("retain", "destroy")
MAX_PATHS = 100
# The order the data plane applies the scopes in.
SCOPE_ORDER = ("targetCredential", "target", "proxyCredential", "proxy")


def new_filter_id() -> str:
    """A new filter id, e.g. `filt_3f9a0c1b2d4e5f60`."""
    return f"filt_{secrets.token_hex(8)}"


class PayloadFilter(OneParent, ConfigEntity, TimestampMixin, Base):
    __tablename__ = "payload_filters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_filter_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(8))
    # Path texts as the API received them (parsed again by whoever applies them).
    paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[str | None] = mapped_column(Text)

    @property
    def scope(self) -> str:
        """`targetCredential`, `target`, `proxyCredential` or `proxy`."""
        if self.proxy_id:
            return "proxy"
        if self.target_id:
            return "target"
        return f"{self.credential.credential_type}Credential"


@dataclass(frozen=True)
class FilterStep:
    """One filter as the data plane applies it: parsed paths, where it came from."""

    filter_id: str
    scope: str
    action: str
    paths: tuple[JsonPath, ...]

    def apply(self, document: Any) -> Any:
        """`document` after this filter (a new value; `document` is not modified)."""
        if self.action == "retain":
            return retain(document, self.paths)
        return destroy(document, self.paths)


def filter_chains(session: Session, proxies: Iterable[Proxy]) -> dict[str, tuple[FilterStep, ...]]:
    """Each proxy's filters in application order (target credential → target → proxy
    credential → proxy, creation order within a scope), by proxy id; proxies without
    filters are left out."""
    by_parent: dict[str, list[PayloadFilter]] = defaultdict(list)
    rows = session.scalars(
        select(PayloadFilter).order_by(PayloadFilter.created_at, PayloadFilter.id)
    )
    for row in rows:
        by_parent[row.parent_id].append(row)
    chains: dict[str, tuple[FilterStep, ...]] = {}
    for proxy in proxies:
        parents = zip(
            SCOPE_ORDER,
            (proxy.target_credential_id, proxy.target_id, proxy.proxy_credential_id, proxy.id),
            strict=True,
        )
        steps = tuple(
            FilterStep(row.id, scope, row.action, parse_paths(row.paths))
            for scope, parent_id in parents
            for row in by_parent.get(parent_id, ())
        )
        if steps:
            chains[proxy.id] = steps
    return chains
