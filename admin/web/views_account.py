"""Signing in and out, your password, your user tokens and your sessions; the account
page also shows your pool account (`views_pool_account`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import func, select

from admin.auth import live_token
from admin.errors import ApiError
from admin.extensions import db
from admin.throttle import TooManyFailures, failed, keys_for, refuse_if_locked
from admin.web import bp
from admin.web.confirm import confirm_then_delete
from admin.web.core_api import call, get
from admin.web.forms import ConfirmForm, LoginForm, NewTokenForm, PasswordForm, TokenLoginForm
from admin.web.forms_pool_account import PoolKeyForm
from admin.web.session import begin_session, end_session, signed_in
from admin.web.views_pool_account import create_pool_key, pool_account_values
from models import User
from models.user import password_matches

WRONG_PASSWORD = "Email or password is wrong (or no password is set: sign in with a token)."
WRONG_TOKEN = "This token is not valid, or it was revoked."
LOGGED_EMAIL_LENGTH = 320


def _next_page() -> str:
    """Where to go after signing in: a local path only (no open redirect)."""
    target = request.args.get("next", "")
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return target
    return url_for("web.home")


def _duration(seconds: int) -> str:
    """`30 minutes`, `12 hours`, `90 seconds`: the largest unit that divides evenly."""
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def _password_sign_in(form: LoginForm) -> User | None:
    """The user whose email and password these are; raises TooManyFailures when locked."""
    email = form.email.data.strip()
    keys = keys_for(email)
    refuse_if_locked(keys)  # even a right password is refused during a lock
    user = db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if password_matches(user, form.password.data):
        return user
    failed(keys, f"failed password sign-in for {email[:LOGGED_EMAIL_LENGTH]!r}")
    return None


@bp.route("/login", methods=["GET", "POST"])
def login():
    password_form, token_form = LoginForm(prefix="pw"), TokenLoginForm(prefix="tk")
    error, status, retry_after = None, 200, None
    try:
        if password_form.submit_ok():
            user = _password_sign_in(password_form)
            if user is not None:
                begin_session(user)
                return redirect(_next_page())
            error = WRONG_PASSWORD
        elif token_form.submit_ok():
            try:
                record = live_token(token_form.token.data.strip())
            except ApiError:
                error = WRONG_TOKEN
            else:
                begin_session(record.user, token=record)
                return redirect(_next_page())
    except TooManyFailures as locked:
        error, status, retry_after = locked.message, 429, locked.retry_after_s
    response = make_response(
        render_template(
            "web/login.html", password_form=password_form, token_form=token_form, error=error
        ),
        status,
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.post("/logout")
def logout():
    if ConfirmForm().validate_on_submit():
        end_session()
        flash("Signed out.")
    return redirect(url_for("web.login"))


@bp.route("/account", methods=["GET", "POST"])
@signed_in
def account():
    password_form, token_form = PasswordForm(prefix="pw"), NewTokenForm(prefix="tok")
    pool_key_form = PoolKeyForm(prefix="ppk")
    new_token = new_pool_key = None
    if password_form.submit_ok():
        body = {"password": password_form.password.data}
        if password_form.current_password.data:
            body["currentPassword"] = password_form.current_password.data
        answer = call("PUT", "/users/me/password", body)
        if answer.ok:
            flash(
                "Password set. You can now sign in with your email and this password;"
                " your other sessions were signed out."
            )
            return redirect(url_for("web.account"))
        password_form.show_errors(answer.field_errors, answer.message)
    elif token_form.submit_ok():
        body = {"label": token_form.label.data} if token_form.label.data else {}
        answer = call("POST", "/users/me/tokens", body)
        if answer.ok:
            new_token = answer.item("tokens")
        else:
            token_form.show_errors(answer.field_errors, answer.message)
    elif pool_key_form.submit_ok():
        new_pool_key = create_pool_key(pool_key_form)
    settings = current_app.config["PORTCULLIS_SETTINGS"]
    page = render_template(
        "web/account.html",
        password_form=password_form,
        token_form=token_form,
        tokens=get("/users/me/tokens").items("tokens"),
        sessions=get("/users/me/sessions").items("sessions"),
        idle_for=_duration(settings.web_session_idle_seconds),
        lasts_for=_duration(settings.web_session_max_seconds),
        new_token=new_token,
        pool_key_form=pool_key_form,
        new_pool_key=new_pool_key,
        me=g.me,
        **pool_account_values(g.web_session.user),
    )
    response = make_response(page)
    if new_token or new_pool_key:  # a secret shown once: no copy in any cache
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/account/tokens/<token_id>/revoke", methods=["GET", "POST"])
@signed_in
def revoke_token(token_id: str):
    return confirm_then_delete(
        f"/users/me/tokens/{token_id}",
        back=url_for("web.account"),
        question="Revoke this token?",
        consequence="Scripts using it, and web sessions signed in with it, stop working at once."
        " This cannot be undone.",
        action="Revoke token",
        done="Token revoked.",
    )


@bp.post("/account/sessions/<session_id>/revoke")
@signed_in
def revoke_session(session_id: str):
    if ConfirmForm().validate_on_submit():
        answer = call("DELETE", f"/users/me/sessions/{session_id}")
        if answer.ok and session_id == g.web_session.id:
            end_session()
            flash("Signed out.")
            return redirect(url_for("web.login"))
        flash("Session revoked: that browser is signed out." if answer.ok else answer.message)
    return redirect(url_for("web.account"))


@bp.post("/account/sessions/revoke-others")
@signed_in
def revoke_other_sessions():
    if ConfirmForm().validate_on_submit():
        answer = call("DELETE", "/users/me/sessions")
        flash(answer.message)
    return redirect(url_for("web.account"))
