"""Failed sign-ins, counted in a sliding window in the store so every admin process sees them.

A row per failure and per key (`account:<email>`, `address:<ip>`); the key is
stored as its SHA-256, so what people typed into the email field is not kept.
A key is locked while it has `max_failures` failures in the last `window`;
the lock lifts when the oldest of those leaves the window. Attempts refused
during a lock are not counted, so a lock never outlasts one window.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Index, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime


class SignInFailure(Base):
    """One failed sign-in (or Core API token) attempt, under one key."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_key_at", "key_hash", "failed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def account_key(email: str) -> str:
    return "account:" + email.strip().lower()


def address_key(address: str | None) -> str:
    return "address:" + (address or "unknown")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ThrottlePolicy:
    """`max_failures` failures within `window` lock a key until they age out."""

    max_failures: int
    window: timedelta

    @classmethod
    def of_seconds(cls, max_failures: int, window: int) -> ThrottlePolicy:
        return cls(max_failures, timedelta(seconds=window))

    def locked_until(self, session: Session, key: str, now: datetime) -> datetime | None:
        """When `key`'s lock lifts, or None if it is not locked."""
        recent = session.scalars(
            select(SignInFailure.failed_at)
            .where(SignInFailure.key_hash == _hash(key))
            .where(SignInFailure.failed_at > now - self.window)
            .order_by(SignInFailure.failed_at.desc())
            .limit(self.max_failures)
        ).all()
        if len(recent) < self.max_failures:
            return None
        return recent[-1] + self.window

    def retry_after(self, session: Session, keys: list[str], now: datetime) -> timedelta | None:
        """How long until every key in `keys` is unlocked, or None if none is locked."""
        until = [t for t in (self.locked_until(session, k, now) for k in keys) if t is not None]
        return max(until) - now if until else None


def record_failure(session: Session, keys: list[str], now: datetime) -> None:
    """Count a failure under each key (the caller commits)."""
    session.add_all(SignInFailure(key_hash=_hash(key), failed_at=now) for key in keys)


def purge_old_failures(session: Session, window: timedelta, now: datetime) -> int:
    """Delete failures that no window can count any more (the caller commits)."""
    result = session.execute(delete(SignInFailure).where(SignInFailure.failed_at <= now - window))
    return result.rowcount or 0
