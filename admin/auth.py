"""Core API authentication (`u-` user tokens, or the web admin's session) and role checks.

The web pages call the Core API in-process (`admin.web.core_api`) as the
signed-in session's user: they put the session's id into the WSGI environ
under `WEB_SESSION_ENVIRON`, a key no HTTP client can set (headers arrive
as `HTTP_*`). Either way the request ends up as `g.user`, and every role
check below applies to it alike.
"""

from __future__ import annotations

from datetime import timedelta

from flask import abort, current_app, g, request
from sqlalchemy import select

from admin.errors import ApiError, error_response, not_found
from admin.extensions import db
from admin.throttle import TooManyFailures, failed, keys_for, refuse_if_locked
from models import Client, Membership, User, UserToken, WebSession, utcnow
from models.enums import Role
from models.tokens import USER_TOKEN_PREFIX, hash_token
from models.web_session import SessionTimeouts

# Recording every use would make each API call a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
WEB_SESSION_ENVIRON = "portcullis.web_session"


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


def session_timeouts() -> SessionTimeouts:
    settings = current_app.config["PORTCULLIS_SETTINGS"]
    return SessionTimeouts.of_seconds(
        settings.web_session_idle_seconds, settings.web_session_max_seconds
    )


def live_token(token: str) -> UserToken:
    """The unrevoked token `token`, or 401; 429 (TooManyFailures) while the address is locked.

    An unknown token counts as a failed attempt of the caller's address; a
    revoked one does not (it was real, nobody is guessing).
    """
    keys = keys_for()
    refuse_if_locked(keys)
    record = None
    if token.startswith(USER_TOKEN_PREFIX):
        record = db.session.scalar(
            select(UserToken).where(UserToken.token_hash == hash_token(token))
        )
    if record is None:
        failed(keys, "unknown user token")
        raise _unauthorized("Invalid user token")
    if record.revoked:
        raise _unauthorized("User token has been revoked")
    return record


def _too_many(locked: TooManyFailures):
    response, status = error_response(429, "TOO_MANY_FAILURES", locked.message)
    response.status_code = status
    response.headers["Retry-After"] = str(locked.retry_after_s)
    return response


def _web_session_user(session_id: str) -> User:
    web_session = db.session.get(WebSession, session_id)
    if web_session is None or not session_timeouts().is_live(web_session, utcnow()):
        raise _unauthorized("Your web session has ended; sign in again")
    g.web_session = web_session
    return web_session.user


def authenticate() -> None:
    """`before_request` hook: resolve the caller to `g.user`, or answer 401 (429 when locked)."""
    session_id = request.environ.get(WEB_SESSION_ENVIRON)
    if session_id is not None:
        g.user = _web_session_user(session_id)
        return
    token = bearer_token()
    if token is None:
        raise _unauthorized("Missing user token: send 'Authorization: u-...'")
    try:
        record = live_token(token)
    except TooManyFailures as locked:
        abort(_too_many(locked))
    now = utcnow()
    if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
        record.last_used_at = now
        db.session.commit()
    g.user = record.user
    g.token = record


def current_web_session() -> WebSession | None:
    """The web session making this call, if it comes from the web admin."""
    return g.get("web_session")


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
