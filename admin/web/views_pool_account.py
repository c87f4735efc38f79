"""A person's pool account on the web (a Portcullis user IS a pool account), and the leases.

The account page's "Pool" part: the person's `pp_` keys (a new key is shown once), their
credits and their active leases (released from here). The Pool section's lease list: a
person sees their own leases, a platform admin everyone's, and grants credits there.

Everything goes through `pool.*` (the functions behind the `/pool` API), in-process: the
same validation and the same refusals as the API, never an HTTP call to the admin itself.
"""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for

from admin.extensions import db
from admin.web import bp
from admin.web.forms import ConfirmForm
from admin.web.forms_pool_account import GrantForm, PoolKeyForm
from admin.web.session import signed_in
from admin.web.views_pool import page_view
from models import User
from models.pool import PoolApiKey
from pool import accounts, credits, leases
from pool.errors import PoolError

LEASES_PER_PAGE = 50
TRANSACTIONS_SHOWN = 20
NO_SUCH_PERSON = "No Portcullis user has this e-mail."


def _me() -> User:
    """The signed-in person, as stored (not the page's copy)."""
    return g.web_session.user


def is_platform_admin() -> bool:
    return bool(_me().platform_admin)


def pool_account_values(user: User) -> dict:
    """The account page's pool part: keys (newest first), credits, active leases."""
    return {
        "pool_keys": accounts.list_keys(db.session, user.id),
        "pool_credits": credits.credits_record(db.session, user.id, limit=TRANSACTIONS_SHOWN),
        "pool_leases": leases.active_leases(db.session, user.id),
    }


def create_pool_key(form: PoolKeyForm) -> str | None:
    """Issue a key labelled as the form says; its only plain copy, or None (form errors set)."""
    try:
        _, raw = accounts.create_key(db.session, _me(), form.label.data)
    except PoolError as exc:
        db.session.rollback()
        form.show_pool_error(exc)
        return None
    return raw


def _own_key(key_id: str) -> PoolApiKey:
    key = db.session.get(PoolApiKey, key_id)
    if key is None or key.user_id != _me().id:
        abort(404)
    return key


@bp.route("/account/pool-keys/<key_id>/revoke", methods=["GET", "POST"])
@signed_in
def revoke_pool_key(key_id: str):
    """Revoke one of the person's `pp_` keys, after a confirmation page."""
    key = _own_key(key_id)
    back = url_for("web.account", _anchor="pool")
    if ConfirmForm().validate_on_submit():
        try:
            accounts.revoke_key(db.session, _me().id, key_id)
        except PoolError as exc:
            db.session.rollback()
            flash(exc.message)
        else:
            flash(f"Pool key {key.prefix}… revoked.")
        return redirect(back)
    return render_template(
        "web/confirm.html",
        question=f"Revoke the pool key {key.prefix}… ({key.label})?",
        consequence="Calls to the pool API with it are refused at once. Its leases stay"
        " until they expire. This cannot be undone.",
        action="Revoke key",
        back=back,
    )


@bp.post("/account/leases/<lease_id>/release")
@signed_in
def release_lease(lease_id: str):
    """Release one of the person's leases now (no refund); back to where the button was."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        leases.release(db.session, _me(), lease_id)
    except PoolError as exc:
        db.session.rollback()
        flash(exc.message)
    else:
        db.session.commit()
        flash("Lease released: the proxy is free for others again.")
    back = request.form.get("back", "")
    if back == "leases":
        return redirect(url_for("web.pool_leases"))
    return redirect(url_for("web.account", _anchor="pool"))


def _grant(form: GrantForm) -> bool:
    """Add the form's credits to the person it names; whether it was done (errors set)."""
    try:
        person = accounts.find_user(db.session, email=form.email.data)
        credits.grant_credits(
            db.session,
            current_app.config["PORTCULLIS_SETTINGS"],
            person.id,
            form.amount.data,
            form.tx_type.data,
            form.description.data.strip(),
            created_by=_me().id,
        )
    except PoolError as exc:
        db.session.rollback()
        if exc.code == "USER_NOT_FOUND":
            exc = PoolError(exc.status, exc.code, NO_SUCH_PERSON, {"field": "email"})
        form.show_pool_error(exc)
        return False
    db.session.commit()
    flash(f"{form.amount.data} credits ({form.tx_type.data}) added for {person.email}.")
    return True


@bp.route("/pool/leases", methods=["GET", "POST"])
@signed_in
def pool_leases():
    """Leases, newest first: yours, or everyone's for a platform admin (with the grant form)."""
    admin = is_platform_admin()
    form = GrantForm(prefix="grant")
    if request.method == "POST":
        if not admin:
            return render_template(
                "web/error.html", code=403, message="Only platform admins grant credits."
            ), 403
        if form.submit_ok() and _grant(form):
            return redirect(url_for("web.pool_leases"))
    cursor = request.args.get("cursor", "")
    owner = None if admin else _me().id
    return render_template(
        "web/pool/leases.html",
        **page_view(
            lambda: leases.lease_page(db.session, owner, LEASES_PER_PAGE, cursor or None), cursor
        ),
        everyone=admin,
        form=form if admin else None,
        me_id=_me().id,
    )
