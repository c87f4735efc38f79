"""Who is signed in, to which client they are looking, and what their role lets them do."""

from __future__ import annotations

import functools

from flask import abort, g, redirect, render_template, request, session, url_for

from admin.web import bp
from admin.web.core_api import SignInRequired, get, get_one
from models.enums import Role


def signed_in(view):
    """Pages need a signed-in user; `g.me` holds the user (from the API)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not session.get("token"):
            return redirect(url_for("web.login", next=request.full_path))
        g.me = get("/users/me").item("users")
        return view(*args, **kwargs)

    return wrapper


@bp.errorhandler(SignInRequired)
def _sign_in_again(_exc):
    session.clear()
    return redirect(url_for("web.login", next=request.full_path))


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
