"""The pool members a target's egress may use, and marking one down: the data plane's queries.

The data plane's egress router (addons/egress.py) runs these in threads of its own, never on
mitmproxy's event loop: `free_members` every few seconds for each distinct set of pool filters
its targets use, `mark_down` from a queue when a member failed to carry a request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.crypto import KeyRing
from models.egress import PoolEgress
from models.pool import PoolProxy
from pool.passwords import open_password
from pool.query import BEST_FIRST, egress_query, free_proxies

log = logging.getLogger("portcullis.pool.egress")
MAX_MEMBERS = 50  # per filter: the best-scoring ones; a view, not the whole pool


@dataclass(frozen=True)
class Member:
    """One free active pool proxy, its password opened (in memory only)."""

    id: str
    protocol: str
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


def free_members(
    session: Session, key_ring: KeyRing, egress: PoolEgress, now: float, limit: int = MAX_MEMBERS
) -> list[Member]:
    """Active, unleased proxies matching `egress`'s filters, best score first (at most `limit`).

    A leased proxy belongs to its lessee until the lease ends (`leased_until` in the past);
    a member whose sealed password cannot be opened is left out (and logged), never used.
    """
    query = free_proxies(egress_query(egress), now).order_by(*BEST_FIRST).limit(limit)
    members = []
    for proxy in session.scalars(query):
        try:
            password = open_password(key_ring, proxy)
        except Exception:
            log.warning("pool proxy %s: its password cannot be opened; not used", proxy.id)
            continue
        members.append(
            Member(proxy.id, proxy.protocol, proxy.host, proxy.port, proxy.username, password)
        )
    return members


def mark_down(session: Session, proxy_ids: list[str]) -> int:
    """Mark members that failed to carry a request dead, due a check at once; the caller commits.

    `dead_since` keeps its first value for a proxy already dead. Returns the rows changed.
    """
    if not proxy_ids:
        return 0
    now = utcnow()
    changed = session.execute(
        update(PoolProxy)
        .where(PoolProxy.id.in_(sorted(set(proxy_ids))), PoolProxy.status != "dead")
        .values(status="dead", dead_since=now, next_check_at=0.0)
        .execution_options(synchronize_session=False)
    ).rowcount
    # Already dead (another process, or a checker): only due a check again.
    session.execute(
        update(PoolProxy)
        .where(PoolProxy.id.in_(sorted(set(proxy_ids))))
        .values(next_check_at=0.0)
        .execution_options(synchronize_session=False)
    )
    return changed
