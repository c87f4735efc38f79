"""Pool → Notifiers: platform notifiers (webhooks and e-mail channels for system and user
events, such as the pool's), for platform admins only. The list with each one's health, the
add form (the client notifiers' form: event checkboxes plus free patterns), the signing
secret shown once, a test button and delete. The logic is `admin.notify.platform`'s, shared
with `run_admin.py pool-notifier` and `/pool/stats/plugins`."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, current_app, flash, redirect, render_template, url_for

from admin.errors import ApiError
from admin.extensions import db
from admin.notify.health import notifier_health
from admin.notify.platform import (
    add_platform_notifier,
    platform_notifier,
    platform_notifiers,
    remove_platform_notifier,
    send_platform_test,
)
from admin.web import bp
from admin.web.forms import ConfirmForm
from admin.web.session import signed_in
from admin.web.views_notifiers import _body, _form, event_names
from admin.web.views_pool import platform_admin_only
from models.base import isoformat_z


def _rows() -> list[dict]:
    rows = []
    for notifier in platform_notifiers(db.session):
        health = notifier_health(db.session, notifier.id)
        last = health.last_delivery_at
        last_at = isoformat_z(datetime.fromtimestamp(last, UTC)) if last else None
        rows.append(
            {
                "id": notifier.id,
                "name": notifier.name,
                "kind": notifier.kind,
                "url": notifier.url,
                "recipients": notifier.recipients or [],
                "subscribes_to": notifier.subscribes_to or [],
                "enabled": notifier.enabled,
                "healthy": health.healthy,
                "last_delivery_at": last_at,
            }
        )
    return rows


@bp.route("/pool/notifiers", methods=["GET", "POST"])
@signed_in
@platform_admin_only
def pool_notifiers():
    """The platform notifiers and the form adding one (the secret is shown once, rendered)."""
    form = _form()
    if form.submit_ok():
        settings = current_app.config["PORTCULLIS_SETTINGS"]
        key_ring = current_app.config["PORTCULLIS_KEY_RING"]
        try:
            notifier, secret = add_platform_notifier(db.session, settings, key_ring, _body(form))
        except ApiError as error:
            db.session.rollback()
            form.show_errors(error.details.get("fields") or {}, error.message)
        else:
            db.session.commit()
            # Rendered, not redirected: the secret never goes into a flash cookie.
            return render_template(
                "web/pool/notifier_created.html", name=notifier.name, secret=secret
            )
    return render_template(
        "web/pool/notifiers.html", notifiers=_rows(), form=form, events=event_names()
    )


def _stored(notifier_id: str):
    notifier = platform_notifier(db.session, notifier_id)
    if notifier is None:
        abort(404)
    return notifier


@bp.post("/pool/notifiers/<notifier_id>/test")
@signed_in
@platform_admin_only
def pool_notifier_test(notifier_id: str):
    """Queue a `notifier.test` event to this notifier only."""
    notifier = _stored(notifier_id)
    if ConfirmForm().validate_on_submit():
        if not notifier.enabled:
            flash(f"Notifier {notifier.name} is disabled: nothing was sent.")
        else:
            send_platform_test(db.session, notifier)
            db.session.commit()
            flash(f"Test event queued for {notifier.name}: its health shows within seconds.")
    return redirect(url_for("web.pool_notifiers"))


@bp.post("/pool/notifiers/<notifier_id>/delete")
@signed_in
@platform_admin_only
def pool_notifier_delete(notifier_id: str):
    """Delete the notifier and its delivery log."""
    notifier = _stored(notifier_id)
    if ConfirmForm().validate_on_submit():
        name = notifier.name
        remove_platform_notifier(db.session, notifier)
        db.session.commit()
        flash(f"Notifier {name} deleted.")
    return redirect(url_for("web.pool_notifiers"))
