"""Signing in and out, your password and your user tokens."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, g, redirect, render_template, request, session, url_for
from sqlalchemy import func, select

from admin.api.users import issue_token
from admin.extensions import db
from admin.web import bp
from admin.web.core_api import call, get
from admin.web.forms import ConfirmForm, LoginForm, NewTokenForm, PasswordForm, TokenLoginForm
from admin.web.session import signed_in
from models import User, UserToken, utcnow
from models.tokens import hash_token
from models.user import password_matches

WEB_TOKEN_LABEL = "Web sign-in"


def _next_page() -> str:
    """Where to go after signing in: a local path only (no open redirect)."""
    target = request.args.get("next", "")
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return target
    return url_for("web.home")


def _start_session(token: str, minted_token_id: str | None) -> None:
    session.clear()
    session["token"] = token
    session["minted"] = minted_token_id  # revoked at sign-out when we made it
    session.permanent = False


@bp.route("/login", methods=["GET", "POST"])
def login():
    password_form, token_form = LoginForm(prefix="pw"), TokenLoginForm(prefix="tk")
    error = None
    if password_form.submit_ok():
        email = password_form.email.data.strip().lower()
        user = db.session.scalar(select(User).where(func.lower(User.email) == email))
        if password_matches(user, password_form.password.data):
            record, token = issue_token(user, WEB_TOKEN_LABEL)
            db.session.commit()
            _start_session(token, record.id)
            return redirect(_next_page())
        error = "Email or password is wrong (or no password is set: sign in with a token)."
    elif token_form.submit_ok():
        token = token_form.token.data.strip()
        record = db.session.scalar(
            select(UserToken).where(UserToken.token_hash == hash_token(token))
        )
        if record is not None and not record.revoked:
            _start_session(token, None)
            return redirect(_next_page())
        error = "This token is not valid, or it was revoked."
    return render_template(
        "web/login.html", password_form=password_form, token_form=token_form, error=error
    )


@bp.post("/logout")
def logout():
    if ConfirmForm().validate_on_submit():
        minted = session.get("minted")
        if minted:
            record = db.session.get(UserToken, minted)
            if record is not None and record.revoked_at is None:
                record.revoked_at = utcnow()
                db.session.commit()
        session.clear()
        flash("Signed out.")
    return redirect(url_for("web.login"))


@bp.route("/account", methods=["GET", "POST"])
@signed_in
def account():
    password_form, token_form = PasswordForm(prefix="pw"), NewTokenForm(prefix="tok")
    new_token = None
    if password_form.submit_ok():
        body = {"password": password_form.password.data}
        if password_form.current_password.data:
            body["currentPassword"] = password_form.current_password.data
        answer = call("PUT", "/users/me/password", body)
        if answer.ok:
            flash("Password set. You can now sign in with your email and this password.")
            return redirect(url_for("web.account"))
        password_form.show_errors(answer.field_errors, answer.message)
    elif token_form.submit_ok():
        body = {"label": token_form.label.data} if token_form.label.data else {}
        answer = call("POST", "/users/me/tokens", body)
        if answer.ok:
            new_token = answer.item("tokens")
        else:
            token_form.show_errors(answer.field_errors, answer.message)
    tokens = get("/users/me/tokens").items("tokens")
    return render_template(
        "web/account.html",
        password_form=password_form,
        token_form=token_form,
        tokens=tokens,
        new_token=new_token,
        me=g.me,
    )


@bp.route("/account/tokens/<token_id>/revoke", methods=["GET", "POST"])
@signed_in
def revoke_token(token_id: str):
    if ConfirmForm().validate_on_submit():
        answer = call("DELETE", f"/users/me/tokens/{token_id}")
        flash("Token revoked." if answer.ok else answer.message)
        return redirect(url_for("web.account"))
    return render_template(
        "web/confirm.html",
        question="Revoke this token?",
        consequence="Scripts using it stop working at once. This cannot be undone.",
        action="Revoke token",
        back=url_for("web.account"),
    )
