"""`pp_` keys to the pool API (seed 003): issued once, stored only as their SHA-256.

A key is `pp_` and 48 random letters and digits (about 285 bits), so a plain SHA-256
is a safe stored form (as for user tokens). `prefix`, its first 8 characters, is shown
in lists so a person can tell keys apart; it does not help to guess one.
"""

from __future__ import annotations

import secrets
import string
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import User
from models.base import utcnow
from models.names import name_problem
from models.pool import PoolApiKey
from models.tokens import hash_token
from pool.errors import PoolError, invalid

KEY_PREFIX = "pp_"
KEY_ALPHABET = string.ascii_letters + string.digits
KEY_RANDOM_CHARS = 48
KEY_LENGTH = len(KEY_PREFIX) + KEY_RANDOM_CHARS
PREFIX_CHARS = 8
LABEL_MAX_CHARS = 100
# Recording every use would make each API call a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def generate_key() -> str:
    """A new raw key: `pp_` and 48 random letters and digits."""
    return KEY_PREFIX + "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_RANDOM_CHARS))


def looks_like_key(raw: str) -> bool:
    """Whether `raw` has a key's shape (checked before any hashing or store lookup)."""
    return (
        len(raw) == KEY_LENGTH
        and raw.startswith(KEY_PREFIX)
        and all(ch in KEY_ALPHABET for ch in raw[len(KEY_PREFIX) :])
    )


def check_label(label: str) -> str:
    label = label.strip()
    problem = name_problem(label) if label else "Must not be empty."
    if problem or len(label) > LABEL_MAX_CHARS:
        raise invalid("label", problem or f"At most {LABEL_MAX_CHARS} characters.")
    return label


def issue_key(session: Session, user: User, label: str = "default") -> tuple[PoolApiKey, str]:
    """Add a new key for `user` (not committed); return it and its only plain copy."""
    raw = generate_key()
    key = PoolApiKey(
        user_id=user.id,
        key_hash=hash_token(raw),
        prefix=raw[:PREFIX_CHARS],
        label=check_label(label),
    )
    session.add(key)
    session.flush()
    return key, raw


def find_key(session: Session, raw: str) -> PoolApiKey | None:
    """The key whose plain form is `raw` (revoked or not), or None."""
    if not looks_like_key(raw):
        return None
    return session.scalar(select(PoolApiKey).where(PoolApiKey.key_hash == hash_token(raw)))


def note_use(key: PoolApiKey, now: datetime | None = None) -> bool:
    """Set `last_used_at` if it is older than a minute; whether it changed (then commit)."""
    now = now or utcnow()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return False
    key.last_used_at = now
    return True


def revoke_keys(session: Session, user: User, prefix: str) -> int:
    """Revoke `user`'s live keys starting with `prefix` (at least the 8-character prefix);
    return how many (not committed)."""
    if len(prefix) < PREFIX_CHARS or not prefix.startswith(KEY_PREFIX):
        raise PoolError(
            422,
            "VALIDATION_ERROR",
            f"prefix: give the key's first {PREFIX_CHARS} characters or more ({KEY_PREFIX}...)",
            {"field": "prefix"},
        )
    keys = session.scalars(
        select(PoolApiKey).where(
            PoolApiKey.user_id == user.id,
            PoolApiKey.prefix == prefix[:PREFIX_CHARS],
            PoolApiKey.revoked_at.is_(None),
        )
    ).all()
    now = utcnow()
    for key in keys:
        key.revoked_at = now
    return len(keys)
