"""`Authorization: Bearer pp_...` keys for the pool API (seed 003), and the platform-admin check.

An unknown key counts as a failed sign-in of the caller's address (the admin's throttle,
as for user tokens); while the address is locked every attempt answers 429. A revoked
key is a 401 that says so (it was real: nobody is guessing).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import g, request

from admin.extensions import db
from admin.throttle import TooManyFailures, failed, keys_for, refuse_if_locked
from models import User
from pool.errors import PoolError
from pool.keys import find_key, note_use

AUTH_SCHEME = "Bearer"


class Unauthorized(PoolError):
    """401 in seed 003's shape; the blueprint adds `WWW-Authenticate: Bearer`."""

    def __init__(self, message: str):
        super().__init__(401, "UNAUTHORIZED", message)


class Throttled(PoolError):
    """429 while the caller's address is locked after too many unknown keys."""

    def __init__(self, locked: TooManyFailures):
        super().__init__(429, "TOO_MANY_FAILURES", locked.message)
        self.retry_after_s = locked.retry_after_s


def presented_key() -> str | None:
    """The key of `Authorization: Bearer pp_...` (the scheme is case-insensitive)."""
    scheme, _, rest = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != AUTH_SCHEME.lower() or not rest.strip():
        return None
    return rest.strip()


def authenticate_key() -> None:
    """Resolve the request's key to `g.pool_user` and `g.pool_key`, or raise 401/429."""
    raw = presented_key()
    if raw is None:
        raise Unauthorized("Missing API key: send 'Authorization: Bearer pp_...'")
    throttle_keys = keys_for()
    try:
        refuse_if_locked(throttle_keys)
        key = find_key(db.session, raw)
        if key is None:
            failed(throttle_keys, "unknown pool API key")
            raise Unauthorized("Invalid API key")
    except TooManyFailures as locked:
        raise Throttled(locked) from None
    if key.revoked_at is not None:
        raise Unauthorized("API key has been revoked")
    if note_use(key):
        db.session.commit()
    g.pool_key = key
    g.pool_user = db.session.get(User, key.user_id)


def require_key(view: Callable) -> Callable:
    """Decorate a view that needs a live `pp_` key; sets `g.pool_user` (a `models.User`)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        authenticate_key()
        return view(*args, **kwargs)

    return wrapper


def require_platform_admin() -> None:
    """403 FORBIDDEN unless the key's user is a platform administrator."""
    if not g.pool_user.platform_admin:
        raise PoolError(
            403,
            "FORBIDDEN",
            "This action needs a platform administrator "
            "(run_admin.py platform-admin EMAIL makes one)",
        )
