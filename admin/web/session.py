"""Who is signed in, to which client they are looking, and what their role lets them do.

Sessions live in the store (`models.web_session`); Flask's signed cookie
carries only the session's random secret (and the CSRF token, and flashed
messages), never a user token.
"""

from __future__ import annotations

import functools

from flask import abort, flash, g, redirect, render_template, request, session, url_for

from admin.auth import session_timeouts
from admin.extensions import db
from admin.web import bp
from admin.web.core_api import SignInRequired, get, get_one
from models import User, UserToken, WebSession, utcnow
from models.enums import Role
from models.web_session import find_live_session, start_session

SECRET_KEY = "sid"  # the cookie's only reference to the session


def begin_session(user: User, token: UserToken | None = None) -> None:
    """Sign `user` in: a new session with a new secret, whatever the cookie held before."""
    previous = live_session()
    if previous is not None:  # signing in again ends the session this browser had
        db.session.delete(previous)
    session.clear()  # nothing from before the sign-in survives it (no session fixation)
    _, secret = start_session(
        db.session,
        user,
        token=token,
        address=request.remote_addr,
        user_agent=request.user_agent.string,
    )
    db.session.commit()
    session[SECRET_KEY] = secret  # a browser-session cookie: not `permanent`


def live_session() -> WebSession | None:
    """The live session the cookie names, its last use recorded; None if there is none."""
    secret = session.get(SECRET_KEY)
    if not isinstance(secret, str):
        return None
    timeouts, now = session_timeouts(), utcnow()
    web_session = find_live_session(db.session, secret, timeouts, now)
    if web_session is not None and now - web_session.last_seen_at > timeouts.touch_after():
        web_session.last_seen_at = now
        db.session.commit()
    return web_session


def end_session() -> None:
    """Sign out: the session ends in the store, not only in this browser."""
    web_session = live_session()
    if web_session is not None:
        db.session.delete(web_session)
        db.session.commit()
    session.clear()


def _to_sign_in():
    ended = SECRET_KEY in session
    session.clear()
    if ended:
        flash("Your session has ended; sign in again.")
    return redirect(url_for("web.login", next=request.full_path))


def signed_in(view):
    """Pages need a live session; `g.web_session` is it, `g.me` its user (from the API)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.web_session = live_session()
        if g.web_session is None:
            return _to_sign_in()
        g.me = get("/users/me").item("users")
        return view(*args, **kwargs)

    return wrapper


@bp.errorhandler(SignInRequired)
def _sign_in_again(_exc):
    return _to_sign_in()


def load_client(client_id: str) -> dict:
    """The client the page is about (404 if not the user's), with `g.role` set."""
    client = get_one(f"/clients/{client_id}", "clients")
    roles = next((m["roles"] for m in client["clientMembers"] if m["userId"] == g.me["userId"]), [])
    g.client = client
    g.role = max((Role(r) for r in roles), key=lambda r: r.level, default=Role.USER)
    g.clients = get("/clients").items("clients")
    return client


def can(role: str) -> bool:
    """Whether the signed-in user holds at least `role` in the current client."""
    return g.role.level >= Role(role).level


def require(role: str) -> None:
    """Write forms are not even shown to members whose role cannot use them."""
    if not can(role):
        abort(403)


@bp.errorhandler(400)
@bp.errorhandler(403)
@bp.errorhandler(404)
@bp.errorhandler(405)
def _error_page(exc):
    messages = {
        400: "The form's security token is missing or has expired; go back and send it again.",
        403: "Your role in this client does not allow this.",
        404: "Not found, or not yours.",
        405: "This page does not take that method.",
    }
    code = exc.code or 400
    return render_template("web/error.html", code=code, message=messages.get(code, "")), code
