"""Core API authentication (`u-` user tokens) and role checks on clients."""

from __future__ import annotations

from datetime import timedelta

from flask import g, request
from sqlalchemy import select

from admin.errors import ApiError, not_found
from admin.extensions import db
from models import Client, Membership, User, UserToken, utcnow
from models.enums import Role
from models.tokens import USER_TOKEN_PREFIX, hash_token

# Recording every use would make each API call a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message)


def bearer_token() -> str | None:
    """The token from `Authorization: u-...` or `Authorization: Bearer u-...`."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return rest.strip()
    return header


def authenticate() -> None:
    """`before_request` hook: resolve the caller to `g.user` or answer 401."""
    token = bearer_token()
    if token is None:
        raise _unauthorized("Missing user token: send 'Authorization: u-...'")
    if not token.startswith(USER_TOKEN_PREFIX):
        raise _unauthorized("Invalid user token")
    record = db.session.scalar(select(UserToken).where(UserToken.token_hash == hash_token(token)))
    if record is None:
        raise _unauthorized("Invalid user token")
    if record.revoked:
        raise _unauthorized("User token has been revoked")
    now = utcnow()
    if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
        record.last_used_at = now
        db.session.commit()
    g.user = record.user
    g.token = record


def current_user() -> User:
    return g.user


def membership_for(client_id: str, role: Role = Role.USER) -> Membership:
    """The caller's membership of `client_id`, requiring at least `role`.

    Not a member → 404 (ids of other tenants cannot be probed); too weak a role → 403.
    """
    membership = db.session.get(Membership, (client_id, current_user().id))
    if membership is None:
        raise not_found("Client")
    if not membership.has(role):
        raise ApiError(
            403,
            "FORBIDDEN",
            f"This action needs the '{role.value}' role in client {client_id}",
        )
    return membership


def client_for(client_id: str, role: Role = Role.USER) -> Client:
    """The client `client_id`, if the caller holds at least `role` in it."""
    return membership_for(client_id, role).client
