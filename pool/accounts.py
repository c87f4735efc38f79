"""Pool accounts (seed 003's accounts domain): registration, `pp_` keys, the account record.

A pool account is a Portcullis user: registration makes a `models.User` without a password
(signing in to the web needs `run_admin.py set-password` or a token, as for any user), a
`PoolAccount` at balance 0 and a first key labelled "default". Registration can be
switched off (`PORTCULLIS_POOL_REGISTRATION=off`) and is limited per source address to
`pool_register_per_hour` attempts an hour, counted in the store (the sign-in throttle's
counter under its own key) so several admin processes count together.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from marshmallow import ValidationError
from marshmallow.validate import Email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import User
from models.base import isoformat_z, utcnow
from models.names import name_problem
from models.pool import PoolApiKey
from models.settings import Settings
from models.sign_in_throttle import ThrottlePolicy, record_failure
from pool.credits import account, balance
from pool.errors import PoolError, invalid
from pool.keys import issue_key
from pool.query import UUID_PATTERN

REGISTER_WINDOW = timedelta(hours=1)
REGISTER_KEY_PREFIX = "pool-register:"
EMAIL_MAX_CHARS = 320
DISPLAY_NAME_MAX_CHARS = 200
MAX_LIVE_KEYS = 50  # per user: a list anyone can read without paging


class TooManyRegistrations(PoolError):
    """429 with Retry-After: this address registered too often in the last hour."""

    def __init__(self, retry_after: timedelta):
        super().__init__(
            429,
            "TOO_MANY_REGISTRATIONS",
            "Too many registrations from your address; try again later",
        )
        self.retry_after_s = max(1, math.ceil(retry_after.total_seconds()))


def check_registration_open(settings: Settings) -> None:
    """403 REGISTRATION_CLOSED unless registration is switched on."""
    if not settings.pool_registration_open:
        raise PoolError(
            403,
            "REGISTRATION_CLOSED",
            "Registration is switched off here; ask an administrator for an account",
        )


def count_registration(
    session: Session, settings: Settings, address: str | None, now: datetime | None = None
) -> None:
    """Count one registration attempt from `address` and commit it, or raise 429 when the
    address already made `pool_register_per_hour` in the last hour (not counted then)."""
    now = now or utcnow()
    key = REGISTER_KEY_PREFIX + (address or "unknown")
    policy = ThrottlePolicy(settings.pool_register_per_hour, REGISTER_WINDOW)
    locked_until = policy.locked_until(session, key, now)
    if locked_until is not None:
        raise TooManyRegistrations(locked_until - now)
    record_failure(session, [key], now)
    session.commit()


def check_email(value: object) -> str:
    if not isinstance(value, str):
        raise invalid("email", "must be a string")
    email = value.strip().lower()
    try:
        Email()(email)
    except ValidationError:
        raise invalid("email", "is not an email address") from None
    if len(email) > EMAIL_MAX_CHARS or name_problem(email):
        raise invalid("email", "is not an email address")
    return email


def check_display_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid("display_name", "must be a string")
    name = value.strip()
    problem = name_problem(name)
    if problem or not 1 <= len(name) <= DISPLAY_NAME_MAX_CHARS:
        raise invalid("display_name", problem or f"must be 1-{DISPLAY_NAME_MAX_CHARS} characters")
    return name


def email_taken() -> PoolError:
    return PoolError(
        409, "EMAIL_TAKEN", "A user with this email already exists", {"field": "email"}
    )


def register(
    session: Session, settings: Settings, email: str, display_name: str | None
) -> tuple[User, PoolApiKey, str]:
    """Make a user, its account (balance 0) and its first key "default"; commits. 403 when
    registration is off, 409 EMAIL_TAKEN, 422 naming a bad field."""
    check_registration_open(settings)
    email = check_email(email)
    display_name = check_display_name(display_name)
    if session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise email_taken()
    user = User(email=email, name=display_name, platform_admin=False)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # registered by another request in the meantime
        session.rollback()
        raise email_taken() from None
    account(session, user.id)
    key, raw = issue_key(session, user)
    session.commit()
    return user, key, raw


def registered_record(user: User, key: PoolApiKey, raw: str) -> dict:
    """Seed 003's 201 answer of `POST /auth/register`: the only time `key` is shown."""
    return {
        "user": {"id": user.id, "email": user.email, "display_name": user.name},
        "api_key": issued_key_record(key, raw),
    }


def issued_key_record(key: PoolApiKey, raw: str) -> dict:
    """A new key with its plain form (answered once)."""
    return {"id": key.id, "key": raw, "prefix": key.prefix, "label": key.label}


def key_record(key: PoolApiKey) -> dict:
    """A key as lists show it: never the key or its hash."""
    return {
        "id": key.id,
        "prefix": key.prefix,
        "label": key.label,
        "created_at": isoformat_z(key.created_at),
        "last_used_at": isoformat_z(key.last_used_at),
        "revoked_at": isoformat_z(key.revoked_at),
    }


def create_key(session: Session, user: User, label: object = None) -> tuple[PoolApiKey, str]:
    """Another key for `user` (label "default" when none is given); committed. 409 when the
    user already has `MAX_LIVE_KEYS` live keys."""
    if label is not None and not isinstance(label, str):
        raise invalid("label", "must be a string")
    live = session.scalar(
        select(func.count(PoolApiKey.id)).where(
            PoolApiKey.user_id == user.id, PoolApiKey.revoked_at.is_(None)
        )
    )
    if live >= MAX_LIVE_KEYS:
        raise PoolError(
            409,
            "TOO_MANY_KEYS",
            f"You have {live} live keys, the most allowed; revoke one first",
            {"max_keys": MAX_LIVE_KEYS},
        )
    key, raw = issue_key(session, user, "default" if label is None else label)
    session.commit()
    return key, raw


def list_keys(session: Session, user_id: str) -> list[dict]:
    """The user's keys, live ones first, newest first; revoked ones only the newest 50."""
    ordered = select(PoolApiKey).where(PoolApiKey.user_id == user_id)
    newest = (PoolApiKey.created_at.desc(), PoolApiKey.id.desc())
    live = session.scalars(ordered.where(PoolApiKey.revoked_at.is_(None)).order_by(*newest))
    revoked = session.scalars(
        ordered.where(PoolApiKey.revoked_at.is_not(None)).order_by(*newest).limit(MAX_LIVE_KEYS)
    )
    return [key_record(k) for k in [*live, *revoked]]


def revoke_key(session: Session, user_id: str, key_id: str) -> PoolApiKey:
    """Revoke the user's key `key_id` (already revoked: unchanged); committed. 404 when the
    user has no such key (someone else's is not found either)."""
    key = session.get(PoolApiKey, key_id) if UUID_PATTERN.fullmatch(key_id) else None
    if key is None or key.user_id != user_id:
        raise PoolError(404, "KEY_NOT_FOUND", "You have no API key with this id")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    session.commit()
    return key


def account_record(session: Session, user: User) -> dict:
    """`GET /account`: who the key belongs to and the balance."""
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.name,
        "balance": balance(session, user.id),
        "created_at": isoformat_z(user.created_at),
        "is_platform_admin": bool(user.platform_admin),
    }


def find_user(session: Session, email: object = None, user_id: object = None) -> User:
    """The user named by `email` or `user_id` (exactly one of them); 422/404 otherwise."""
    if (email is None) == (user_id is None):
        raise invalid("email", "give either email or user_id")
    if user_id is not None:
        if not isinstance(user_id, str) or len(user_id) > 64:
            raise invalid("user_id", "must be a user id")
        user = session.get(User, user_id)
    else:
        if not isinstance(email, str) or len(email) > EMAIL_MAX_CHARS:
            raise invalid("email", "must be an email address")
        user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        raise PoolError(404, "USER_NOT_FOUND", "No user with this email or id")
    return user
