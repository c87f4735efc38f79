"""The pool's events: `credits.low` / `credits.exhausted` (a pool account), `lease.expired`,
and `proxy.pool_low` (the whole pool, and each target egressing through it).

Each is recorded with `models.events.record_event` in the caller's transaction; dedup keys
make a condition reported once however many admin processes see it:

- credits: once per crossing — the key holds the id of the account's last top-up, so a
  grant followed by spending down again reports again;
- `lease.expired`: once per lease, claimed by compare-and-set on `expiry_notified_at`;
- `proxy.pool_low`: once per condition (the pool, or a target) per UTC hour.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import String, cast, func, select, update
from sqlalchemy.orm import Session

from models.base import isoformat_z, utcnow
from models.egress import EgressError, PoolEgress, load_egress
from models.events import Event, record_event
from models.pool import PoolCreditTransaction, PoolLease, PoolProxy
from models.settings import Settings
from models.target import Target
from pool.query import ProxyQuery, egress_query, filter_values, free_proxies

log = logging.getLogger("portcullis.pool")
LEASE_BATCH = 500


def _last_top_up(session: Session, user_id: str) -> int:
    """The id of the account's newest credit addition (0 when none): a crossing's identity."""
    top_up = session.scalar(
        select(func.max(PoolCreditTransaction.id)).where(
            PoolCreditTransaction.user_id == user_id, PoolCreditTransaction.amount > 0
        )
    )
    return int(top_up or 0)


def credits_event(settings: Settings, user_id: str, balance: int, top_up: int) -> Event | None:
    """The event a pool account's new `balance` calls for, or None."""
    if balance <= 0:
        name, title = "credits.exhausted", "Your pool credits are used up"
        message = "Your pool credit balance is 0: acquiring a proxy needs at least 1 credit."
    elif balance < settings.pool_credits_low:
        name, title = "credits.low", f"Your pool credits are low: {balance} left"
        message = (
            f"Your pool credit balance is {balance}, below {settings.pool_credits_low}. "
            "Each proxy lease costs 1 credit."
        )
    else:
        return None
    return Event(
        name=name,
        title=title,
        message=message,
        details={"userId": user_id, "balance": balance, "threshold": settings.pool_credits_low},
        user_id=user_id,
        dedup_key=f"pool.{name}:{user_id}:{top_up}",
    )


def credits_changed(session: Session, settings: Settings, user_id: str, balance: int) -> bool:
    """After a charge: record `credits.exhausted` (balance 0) or `credits.low` (below
    `pool_credits_low`), once per crossing. Whether an event was new. Does not commit."""
    event = credits_event(settings, user_id, balance, _last_top_up(session, user_id))
    return event is not None and record_event(session, event) is not None


def lease_expired_event(lease: PoolLease, proxy: PoolProxy | None) -> Event:
    address = f"{proxy.host}:{proxy.port}" if proxy is not None else "a proxy no longer pooled"
    return Event(
        name="lease.expired",
        title=f"Your lease of {address} expired",
        message=(
            f"Lease {lease.id} of {address} expired at {isoformat_z(lease.expires_at)}; "
            "the proxy is back in the pool. Acquire again to keep using one."
        ),
        details={
            "leaseId": lease.id,
            "proxyId": lease.proxy_id,
            "expiresAt": isoformat_z(lease.expires_at),
        },
        user_id=lease.user_id,
        dedup_key=f"lease.expired:{lease.id}",
    )


def scan_expired_leases(session: Session, now: datetime | None = None) -> int:
    """Report each lease that ran out unreleased, once: claim it by compare-and-set on
    `expiry_notified_at` (so two admin processes never both report it), then record the
    user event in the same transaction. How many were reported. Commits."""
    now = now or utcnow()
    reported = 0
    while True:
        due = session.scalars(
            select(PoolLease)
            .where(
                PoolLease.expiry_notified_at.is_(None),
                PoolLease.expires_at <= now,
                PoolLease.released_at.is_(None),
            )
            .order_by(PoolLease.expires_at, PoolLease.id)
            .limit(LEASE_BATCH)
        ).all()
        for lease in due:
            won = session.execute(
                update(PoolLease)
                .where(PoolLease.id == lease.id, PoolLease.expiry_notified_at.is_(None))
                .values(expiry_notified_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if won:
                proxy = session.get(PoolProxy, lease.proxy_id)
                reported += record_event(session, lease_expired_event(lease, proxy)) is not None
        session.commit()
        if len(due) < LEASE_BATCH:
            return reported


def free_active_count(session: Session, query: ProxyQuery, now_s: float) -> int:
    """Active proxies matching `query` that nobody leases at `now_s`."""
    free = free_proxies(query, now_s).with_only_columns(PoolProxy.id).subquery()
    return int(session.scalar(select(func.count()).select_from(free)) or 0)


def describe(query: ProxyQuery) -> str:
    """`query`'s filters in words, e.g. "country US, min_score 0.5"."""
    return ", ".join(f"{name} {value}" for name, value in filter_values(query).items()) or (
        "any proxy"
    )


def _hour(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H")


def pool_low_events(session: Session, settings: Settings, now: datetime) -> list[Event]:
    """`proxy.pool_low` for the whole pool (a system event; not while the pool is empty of
    proxies altogether: an install that does not use the pool hears nothing) and for each
    target egressing through the pool (a client event for the target's client)."""
    threshold = settings.pool_low_threshold
    now_s = now.timestamp()
    hour = _hour(now)
    events = []
    total = int(session.scalar(select(func.count()).select_from(PoolProxy)) or 0)
    free = free_active_count(session, ProxyQuery(status="active"), now_s)
    if total and free < threshold:
        events.append(
            Event(
                name="proxy.pool_low",
                title=f"The proxy pool is low: {free} free active proxies",
                message=(
                    f"{free} of the pool's {total} proxies are active and not leased, "
                    f"below the threshold of {threshold}."
                ),
                details={"scope": "pool", "free": free, "total": total, "threshold": threshold},
                dedup_key=f"proxy.pool_low:pool:{hour}",
            )
        )
    counts: dict[ProxyQuery, int] = {}
    # A prefilter on the JSON's text (portable; "direct" may be stored as JSON null, which
    # IS NOT NULL lets through); the mode is checked on the parsed value below.
    targets = session.execute(
        select(Target.id, Target.client_id, Target.name, Target.egress).where(
            Target.egress.is_not(None), cast(Target.egress, String).contains('"pool"')
        )
    ).all()
    for target_id, client_id, name, stored in targets:
        try:
            egress = load_egress(stored)
        except EgressError:  # unreadable: the data plane refuses its requests; nothing to count
            log.warning("target %s: its egress setting cannot be read", target_id)
            continue
        if not isinstance(egress, PoolEgress):
            continue
        filters = egress_query(egress)
        if filters not in counts:
            counts[filters] = free_active_count(session, filters, now_s)
        matching = counts[filters]
        if matching >= threshold:
            continue
        events.append(
            Event(
                name="proxy.pool_low",
                title=f"Target {name}: {matching} free pool proxies match its egress",
                message=(
                    f"Target {name} sends through pool proxies matching {describe(filters)}; "
                    f"{matching} are active and not leased, below the threshold of {threshold}."
                ),
                details={
                    "scope": "target",
                    "targetId": target_id,
                    "free": matching,
                    "threshold": threshold,
                    "filters": describe(filters),
                },
                client_id=client_id,
                dedup_key=f"proxy.pool_low:{target_id}:{hour}",
            )
        )
    return events


def scan_pool_low(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Record the `proxy.pool_low` events due now (once per condition per hour); how many
    were new. Commits."""
    now = now or utcnow()
    recorded = sum(
        record_event(session, event) is not None
        for event in pool_low_events(session, settings, now)
    )
    session.commit()
    return recorded
