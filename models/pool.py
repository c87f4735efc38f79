"""The egress proxy pool (seed 003): sources, the proxies they list, check history, `pp_` keys.

The pool is platform-wide (no client owns a pool proxy). The data plane reads pool members
for targets that egress through the pool on its own refresh (addons/egress.py), not through
the config snapshot, so nothing here bumps the config version. Ids are UUIDs, as seed 003
shows them. Accounts (seed 003's accounts domain) are Portcullis users: a `PoolAccount`
holds a user's credit balance, `PoolCreditTransaction` its history, `PoolLease` the
exclusive leases it acquired.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, TimestampMixin, UTCDateTime, utcnow

PROTOCOLS = ("http", "https", "socks4", "socks5")
STATUSES = ("unchecked", "active", "dead")
ANONYMITIES = ("transparent", "anonymous", "elite")


def new_uuid() -> str:
    return str(uuid.uuid4())


class PoolSource(TimestampMixin, Base):
    """A proxy list scraped on a cron schedule by a parser plugin."""

    __tablename__ = "pool_sources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    url: Mapped[str] = mapped_column(Text)
    parser_name: Mapped[str] = mapped_column(String(64))
    cron_schedule: Mapped[str] = mapped_column(String(120))
    default_protocol: Mapped[str] = mapped_column(String(8), default="http")
    is_active: Mapped[bool] = mapped_column(default=True)
    last_scraped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the scheduler next scrapes it (from the cron schedule); None while inactive.
    next_scrape_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_result: Mapped[dict | None] = mapped_column(JSON)  # the last scrape's counts
    last_error: Mapped[str | None] = mapped_column(Text)
    # The scrape lease: one scrape of a source at a time across admin processes (epoch s).
    scrape_claimed_until: Mapped[float | None] = mapped_column(Float)
    scrape_claimed_by: Mapped[str | None] = mapped_column(String(64))


class PoolProxy(Base):
    """One proxy of the pool, with its grades from the checkers."""

    __tablename__ = "pool_proxies"
    __table_args__ = (
        UniqueConstraint("protocol", "host", "port", name="uq_pool_proxies_endpoint"),
        Index("ix_pool_proxies_status_score", "status", "score", "id"),
        Index("ix_pool_proxies_status_latency", "status", "avg_latency_ms", "id"),
        Index("ix_pool_proxies_status_uptime", "status", "uptime_pct", "id"),
        Index("ix_pool_proxies_status_checked", "status", "last_checked_at", "id"),
        Index("ix_pool_proxies_score", "score", "id"),
        Index("ix_pool_proxies_latency", "avg_latency_ms", "id"),
        Index("ix_pool_proxies_uptime", "uptime_pct", "id"),
        Index("ix_pool_proxies_checked", "last_checked_at", "id"),
        Index("ix_pool_proxies_protocol_score", "protocol", "score", "id"),
        Index("ix_pool_proxies_country_score", "country", "score", "id"),
        Index("ix_pool_proxies_anonymity_score", "anonymity", "score", "id"),
        Index("ix_pool_proxies_due", "next_check_at"),
        # Every filterable column: `total_count` for any mix of filters is one narrow index scan.
        Index(
            "ix_pool_proxies_filters",
            "status",
            "protocol",
            "anonymity",
            "country",
            "score",
            "avg_latency_ms",
            "uptime_pct",
            "last_checked_at",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    host: Mapped[str] = mapped_column(String(255))  # an IPv4/IPv6 address or a host name ("ip")
    port: Mapped[int] = mapped_column(Integer)
    protocol: Mapped[str] = mapped_column(String(8))
    username: Mapped[str | None] = mapped_column(String(255))
    # The proxy's password, sealed with the KeyRing (AAD "pool:{id}:password").
    password_key_id: Mapped[str | None] = mapped_column(String(64))
    password_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(12), default="unchecked")
    anonymity: Mapped[str | None] = mapped_column(String(12))
    exit_ip: Mapped[str | None] = mapped_column(String(45))
    country: Mapped[str | None] = mapped_column(String(2))
    score: Mapped[float] = mapped_column(Float, default=0.0)
    avg_latency_ms: Mapped[float | None] = mapped_column(Float)  # EWMA of passed checks
    uptime_pct: Mapped[float | None] = mapped_column(Float)
    checks_total: Mapped[int] = mapped_column(Integer, default=0)
    checks_passed: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # last scraped
    dead_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the checkers next look at it; a claim so two admin processes don't (epoch s).
    next_check_at: Mapped[float] = mapped_column(Float, default=0.0)
    check_claimed_until: Mapped[float | None] = mapped_column(Float)
    source_id: Mapped[str | None] = mapped_column(
        ForeignKey("pool_sources.id", ondelete="SET NULL"), index=True
    )
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    # The live lease, if any: free when `leased_until` is None or in the past (epoch s), so an
    # expired lease frees the proxy without a sweeper. Acquire claims it by compare-and-set.
    leased_until: Mapped[float | None] = mapped_column(Float)
    lease_id: Mapped[str | None] = mapped_column(String(36))


class PoolCheck(Base):
    """One checker's verdict on one proxy: the history behind its score (`recent_checks`)."""

    __tablename__ = "pool_checks"
    __table_args__ = (Index("ix_pool_checks_proxy_created", "proxy_id", "created_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    proxy_id: Mapped[str] = mapped_column(ForeignKey("pool_proxies.id", ondelete="CASCADE"))
    checker_name: Mapped[str] = mapped_column(String(64))
    stage: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column()
    latency_ms: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PoolApiKey(Base):
    """A `pp_` key to the pool API, stored only as its SHA-256 (seed 003)."""

    __tablename__ = "pool_api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # "pp_a1b2c", shown in lists
    label: Mapped[str] = mapped_column(String(100), default="default")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PoolAccount(TimestampMixin, Base):
    """A user's pool credits. `balance` is charged by compare-and-set (`balance >= 1`) in the
    same transaction as the lease; it always equals the sum of the user's transactions."""

    __tablename__ = "pool_accounts"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    balance: Mapped[int] = mapped_column(BigInteger, default=0)


class PoolCreditTransaction(Base):
    """One change of a user's pool credits (seed 003's `recent_transactions`); never changed."""

    __tablename__ = "pool_credit_transactions"
    __table_args__ = (Index("ix_pool_credit_transactions_user", "user_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    amount: Mapped[int] = mapped_column(BigInteger)  # + purchase / grant, - acquire
    tx_type: Mapped[str] = mapped_column(String(16))  # TX_TYPES
    description: Mapped[str] = mapped_column(String(500), default="")
    lease_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(64))  # a user id, "cli" or "self"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


TX_TYPES = ("purchase", "grant", "acquire")


class PoolLease(Base):
    """An exclusive lease of one pool proxy by one user (seed 003 `POST /proxies/acquire`)."""

    __tablename__ = "pool_leases"
    __table_args__ = (
        Index("ix_pool_leases_user_expires", "user_id", "expires_at"),
        Index("ix_pool_leases_expiry_due", "expiry_notified_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    proxy_id: Mapped[str] = mapped_column(
        ForeignKey("pool_proxies.id", ondelete="CASCADE"), index=True
    )
    key_id: Mapped[str | None] = mapped_column(String(36))  # the pp_ key that acquired it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once `lease.expired` was reported (or the lease was released first): a claim.
    expiry_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
