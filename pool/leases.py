"""Exclusive leases of pool proxies (seed 003 `POST /proxies/acquire` and release).

A proxy is free while `leased_until` is None or in the past, so an expired lease frees its
proxy without a sweeper. Acquiring claims the best-scoring free matching active proxy by
compare-and-set, `UPDATE pool_proxies SET leased_until, lease_id WHERE id = :pid AND
(leased_until IS NULL OR leased_until <= :now)`, trying the next candidate when another
request won it, and charges the credit (`pool.credits.charge`, itself a compare-and-set)
in the same transaction; when the charge fails both are rolled back.

Why that is exclusive on both stores: on PostgreSQL (READ COMMITTED) an UPDATE that meets a
row another transaction is changing waits for it and then re-checks its WHERE against the
committed row, so only one claim of a row succeeds; on SQLite writers are serialized (the
first UPDATE takes the store's write lock, waiting out the busy timeout) and each sees the
committed rows. Locks are taken in one order, the proxy then the account, and a lost claim
holds no lock, so concurrent acquires cannot deadlock.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import User
from models.base import isoformat_z, utcnow
from models.crypto import KeyRing
from models.pool import PoolLease, PoolProxy
from pool.credits import balance, charge
from pool.errors import PoolError, invalid
from pool.passwords import open_password
from pool.query import (
    BEST_FIRST,
    MAX_LIMIT,
    UUID_PATTERN,
    filtered_proxies,
    free_at,
    page_of,
    parse_pool_filters,
)

DEFAULT_DURATION_S = 300
MAX_DURATION_S = 3600
ACQUIRE_COST = 1
CANDIDATES = 20  # free proxies read per round; a round's losers are skipped in the next
MAX_ROUNDS = 5


def lease_duration(value: object) -> int:
    """`lease_duration_seconds`: a whole number 1..3600, default 300; 422 naming it."""
    if value is None:
        return DEFAULT_DURATION_S
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DURATION_S:
        raise invalid(
            "lease_duration_seconds",
            f"must be a whole number of seconds from 1 to {MAX_DURATION_S}",
        )
    return value


def insufficient(current: int) -> PoolError:
    return PoolError(
        402,
        "INSUFFICIENT_CREDITS",
        f"You need at least {ACQUIRE_COST} credit to acquire a proxy. Current balance: {current}.",
    )


def _claim(session: Session, proxy_id: str, lease_id: str, until_s: float, now_s: float) -> bool:
    claimed = session.execute(
        update(PoolProxy)
        .where(PoolProxy.id == proxy_id, free_at(now_s))
        .values(leased_until=until_s, lease_id=lease_id)
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1


def proxy_summary(p: PoolProxy) -> dict:
    """The leased proxy as seed 003's acquire answer shows it, then its id."""
    return {
        "ip": p.host,
        "port": p.port,
        "protocol": p.protocol,
        "country": p.country,
        "anonymity": p.anonymity,
        "id": p.id,
    }


def acquire(
    session: Session,
    user: User,
    key_id: str | None,
    filters: dict,
    duration_s: int,
    key_ring: KeyRing,
):
    """Lease the best-scoring free active proxy matching `filters` for `duration_s` seconds
    and charge one credit, in the session's transaction (the caller commits); seed 003's
    answer. Refusals, in this order: 402 INSUFFICIENT_CREDITS, 404 NO_MATCHING_PROXY (no
    active proxy matches), 409 ALL_PROXIES_LEASED. A refusal rolls the session back.

    A proxy that needs a username and password is of no use without them: the answer (and
    only this answer, to the lessee) carries them as `proxy.credentials`, opened from their
    sealed form with `key_ring`."""
    query = parse_pool_filters(filters)
    duration_s = lease_duration(duration_s)
    current = balance(session, user.id)
    if current < ACQUIRE_COST:
        raise insufficient(current)
    matching = filtered_proxies(query).with_only_columns(PoolProxy.id)
    lease_id = str(uuid.uuid4())
    tried: set[str] = set()
    for _ in range(MAX_ROUNDS):
        now_s = time.time()
        free = matching.where(free_at(now_s))
        if tried:
            free = free.where(PoolProxy.id.not_in(tried))
        candidates = session.scalars(free.order_by(*BEST_FIRST).limit(CANDIDATES)).all()
        if not candidates:
            break
        for proxy_id in candidates:
            tried.add(proxy_id)
            now_s = time.time()
            until_s = now_s + duration_s
            if _claim(session, proxy_id, lease_id, until_s, now_s):
                leased = _lease(session, user, key_id, proxy_id, lease_id, now_s, until_s)
                return with_credentials(leased, session.get(PoolProxy, proxy_id), key_ring)
    session.rollback()
    if session.scalar(matching.limit(1)) is None:
        raise PoolError(404, "NO_MATCHING_PROXY", "No active proxy matches these filters")
    raise PoolError(
        409, "ALL_PROXIES_LEASED", "Every active proxy matching these filters is leased; try later"
    )


def _lease(
    session: Session,
    user: User,
    key_id: str | None,
    proxy_id: str,
    lease_id: str,
    now_s: float,
    until_s: float,
) -> dict:
    proxy = session.get(PoolProxy, proxy_id, populate_existing=True)
    remaining = charge(
        session, user.id, ACQUIRE_COST, f"Proxy acquired: {proxy.host}:{proxy.port}", lease_id
    )
    if remaining is None:  # another acquire of this user took the last credit meanwhile
        session.rollback()
        raise insufficient(balance(session, user.id))
    lease = PoolLease(
        id=lease_id,
        user_id=user.id,
        proxy_id=proxy_id,
        key_id=key_id,
        created_at=_datetime(now_s),
        expires_at=_datetime(until_s),
    )
    session.add(lease)
    session.flush()
    return {
        "lease_id": lease_id,
        "proxy": proxy_summary(proxy),
        "expires_at": isoformat_z(lease.expires_at),
        "credits_remaining": remaining,
    }


def with_credentials(leased: dict, proxy: PoolProxy, key_ring: KeyRing) -> dict:
    """`leased` with the proxy's username and password added, when it has them."""
    password = open_password(key_ring, proxy)
    if proxy.username is None and password is None:
        return leased
    credentials = {"username": proxy.username, "password": password}
    return {**leased, "proxy": {**leased["proxy"], "credentials": credentials}}


def _datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def lease_record(lease: PoolLease, proxy: PoolProxy | None, now: datetime | None = None) -> dict:
    """A lease as lists show it: id, proxy, times and whether it is still active."""
    now = now or utcnow()
    if lease.released_at is not None:
        state = "released"
    elif lease.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    return {
        "lease_id": lease.id,
        "proxy": proxy_summary(proxy) if proxy is not None else None,
        "created_at": isoformat_z(lease.created_at),
        "expires_at": isoformat_z(lease.expires_at),
        "released_at": isoformat_z(lease.released_at),
        "status": state,
        "user_id": lease.user_id,
    }


def release(session: Session, user: User, lease_id: str) -> dict:
    """End the user's lease now and free its proxy if it still holds this lease; no refund.
    Releasing again answers the same; 404 LEASE_NOT_FOUND for an unknown lease or someone
    else's. The caller commits."""
    lease = session.get(PoolLease, lease_id) if UUID_PATTERN.fullmatch(lease_id) else None
    if lease is None or lease.user_id != user.id:
        raise PoolError(404, "LEASE_NOT_FOUND", "You have no lease with this id")
    now = utcnow()
    if lease.released_at is None and lease.expires_at > now:
        lease.released_at = now
        lease.expiry_notified_at = lease.expiry_notified_at or now  # never reported as expired
        session.execute(
            update(PoolProxy)
            .where(PoolProxy.id == lease.proxy_id, PoolProxy.lease_id == lease.id)
            .values(leased_until=None, lease_id=None)
            .execution_options(synchronize_session=False)
        )
        session.flush()
    return lease_record(lease, session.get(PoolProxy, lease.proxy_id), now)


def _with_proxies(session: Session, leases: list[PoolLease], now: datetime) -> list[dict]:
    ids = {lease.proxy_id for lease in leases}
    proxies = (
        {p.id: p for p in session.scalars(select(PoolProxy).where(PoolProxy.id.in_(ids)))}
        if ids
        else {}
    )
    return [lease_record(lease, proxies.get(lease.proxy_id), now) for lease in leases]


def active_leases(session: Session, user_id: str) -> list[dict]:
    """The user's leases neither released nor expired, newest first."""
    now = utcnow()
    leases = session.scalars(
        select(PoolLease)
        .where(
            PoolLease.user_id == user_id,
            PoolLease.released_at.is_(None),
            PoolLease.expires_at > now,
        )
        .order_by(PoolLease.created_at.desc(), PoolLease.id.desc())
    ).all()
    return _with_proxies(session, list(leases), now)


def lease_page(
    session: Session, user_id: str | None, limit: int = 50, cursor: str | None = None
) -> dict:
    """A keyset page of leases, newest first, of one user (None: everyone's, for platform
    admins): {"items", "next_cursor", "total_count"}; each item as `lease_record` with
    `user_email` added. A bad cursor is a 422 naming `cursor`."""
    limit = max(1, min(limit, MAX_LIMIT))
    statement = select(PoolLease)
    if user_id is not None:
        statement = statement.where(PoolLease.user_id == user_id)
    order = [(PoolLease.created_at, True), (PoolLease.id, True)]
    page = page_of(session, statement, order, limit, cursor)
    now = utcnow()
    leases = page["items"]
    users = {lease.user_id for lease in leases}
    emails = (
        dict(session.execute(select(User.id, User.email).where(User.id.in_(users))).all())
        if users
        else {}
    )
    items = _with_proxies(session, leases, now)
    for item in items:
        item["user_email"] = emails.get(item["user_id"])
    return {**page, "items": items}
