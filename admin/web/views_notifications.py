"""Notifications: the header bell's unread count, the list by kind (system, yours, each of
your clients') with paging, a detail page that marks one read, and the platform admin's
form for system notifications."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from admin.web import bp
from admin.web.confirm import confirm_then_delete
from admin.web.core_api import SignInRequired, call, get, page_values
from admin.web.forms_team import SystemNotificationForm
from admin.web.session import load_client, signed_in
from models.events import EVENTS

PER_PAGE = 20
SYSTEM, MINE = "system", "me"


@bp.app_template_global()
def unread_notifications() -> dict | None:
    """`{"system": n, "user": n, "clients": {id: n}, "total": n}` for the signed-in user, or
    None; one Core API call per page, kept on `g`."""
    if "unread" not in g:
        g.unread = None
        if g.get("me"):
            try:
                answer = get("/me/notifications/unread")
            except SignInRequired:
                answer = None
            if answer is not None and answer.ok:
                g.unread = {**answer.body.get("unread", {}), "total": answer.body.get("total", 0)}
    return g.unread


@bp.app_template_global()
def event_meaning(name: str | None) -> str:
    """What an event name means, in words (empty for an unknown or missing name)."""
    return EVENTS.get(name or "", "")


def _tabs(clients: list[dict]) -> list[dict]:
    """The kinds of list: system, yours, then each client's, with their unread counts."""
    unread = unread_notifications() or {}
    per_client = unread.get("clients", {})
    return [
        {"key": SYSTEM, "label": "System", "unread": unread.get("system", 0)},
        {"key": MINE, "label": "For you", "unread": unread.get("user", 0)},
        *(
            {
                "key": c["clientId"],
                "label": c["clientName"],
                "unread": per_client.get(c["clientId"], 0),
            }
            for c in clients
        ),
    ]


def _api_path(tab: str) -> str:
    if tab == SYSTEM:
        return "/notifications/system"
    if tab == MINE:
        return f"/users/{g.me['userId']}/notifications"
    return f"/clients/{tab}/notifications"


@bp.route("/notifications", methods=["GET", "POST"])
@signed_in
def notifications():
    """One kind's notifications, newest first, unread marked; `next` pages older ones."""
    g.clients = get("/clients").items("clients")
    tabs = _tabs(g.clients)
    keys = [t["key"] for t in tabs]
    default = next((t["key"] for t in tabs if t["unread"]), SYSTEM)
    tab = request.args.get("tab", default)
    if tab not in keys:
        abort(404)
    form = SystemNotificationForm(prefix="sys")
    if g.me.get("platformAdmin") and form.submit_ok():
        body = {"title": form.title.data.strip(), "message": form.message.data.strip()}
        answer = call("POST", "/notifications/system", body)
        if answer.ok:
            flash("System notification posted: every user sees it.")
            return redirect(url_for("web.notifications", tab=SYSTEM))
        form.show_errors(answer.field_errors, answer.message)
    token = request.args.get("next", "")
    page = get(_api_path(tab), limit=PER_PAGE, nextToken=token)
    return render_template(
        "web/notifications.html",
        tabs=tabs,
        tab=tab,
        form=form,
        **page_values(page, "notifications", token),
    )


@bp.get("/notifications/<tab>/<notification_id>")
@signed_in
def notification(tab: str, notification_id: str):
    """One notification (system or yours); opening it marks it read for you."""
    if tab not in (SYSTEM, MINE):
        abort(404)
    return _detail(tab, notification_id)


@bp.get("/c/<client_id>/notifications/<notification_id>")
@signed_in
def client_notification(client_id: str, notification_id: str):
    """One of the client's notifications; read for you, still unread for the other members."""
    load_client(client_id)
    return _detail(client_id, notification_id)


def _detail(tab: str, notification_id: str):
    answer = get(f"{_api_path(tab)}/{notification_id}")
    if not answer.ok:
        abort(404)
    return render_template("web/notification.html", item=answer.item("notifications"), tab=tab)


@bp.route("/notifications/system/<notification_id>/delete", methods=["GET", "POST"])
@signed_in
def delete_system_notification(notification_id: str):
    """A platform admin takes a system notification down (the API refuses anyone else)."""
    if not g.me.get("platformAdmin"):
        abort(403)
    return confirm_then_delete(
        f"/notifications/system/{notification_id}",
        back=url_for("web.notifications", tab=SYSTEM),
        question="Delete this system notification?",
        consequence="No user sees it any more, read or not.",
        action="Delete notification",
        done="System notification deleted.",
    )
