"""A client's notifiers: the list with their health, the create/edit form (event
checkboxes plus free patterns), the signing secret shown once, the test button, and each
notifier's delivery log. Members read; admins and owners change."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from admin.web import bp
from admin.web.confirm import confirm_then_delete
from admin.web.core_api import call, get, get_one, page_values
from admin.web.forms import ConfirmForm
from admin.web.forms_team import NOTIFIER_TYPES, NotifierForm, split_list
from admin.web.session import can, load_client, require, signed_in
from models.events import EVENTS

DELIVERIES_PER_PAGE = 20


def event_names() -> list[tuple[str, str]]:
    """Every event name with what it means (EVENTS may map names to meanings)."""
    meanings = EVENTS if isinstance(EVENTS, dict) else {}
    return [(name, meanings.get(name, "")) for name in sorted(EVENTS)]


def _form(notifier: dict | None = None) -> NotifierForm:
    """The form, filled from a stored notifier (a sent form's values take their place)."""
    known = {name for name, _ in event_names()}
    if notifier is None:
        form = NotifierForm()
    else:
        patterns = notifier.get("subscribesTo") or []
        form = NotifierForm(
            name=notifier["name"],
            kind=notifier["type"],
            events=[p for p in patterns if p in known],
            patterns=" ".join(p for p in patterns if p not in known),
            url=notifier.get("url") or "",
            recipients="\n".join(notifier.get("recipients") or []),
            enabled=notifier.get("enabled", True),
        )
    form.events.choices = [(name, name) for name, _ in event_names()]
    if notifier is not None:  # the type is fixed once made (the API refuses a change)
        form.kind.choices = [c for c in NOTIFIER_TYPES if c[0] == notifier["type"]]
        form.kind.description = "Fixed after creation: make a new notifier for another type."
    return form


def _body(form: NotifierForm) -> dict:
    """The API's notifier from the form; only the type's own target field is sent."""
    body = {
        "name": form.name.data.strip(),
        "type": form.kind.data,
        "subscribesTo": form.subscriptions(),
        "enabled": form.enabled.data,
    }
    if form.kind.data == "webhook":
        body["url"] = (form.url.data or "").strip()
    else:
        body["recipients"] = split_list(form.recipients.data)
    return body


def _base(client_id: str) -> str:
    return f"/clients/{client_id}/notifiers"


@bp.get("/c/<client_id>/notifiers")
@signed_in
def notifiers(client_id: str):
    load_client(client_id)
    items = get(_base(client_id)).items("notifiers")
    return render_template("web/notifiers.html", notifiers=items, can_change=can("admin"))


@bp.route("/c/<client_id>/notifiers/new", methods=["GET", "POST"])
@signed_in
def new_notifier(client_id: str):
    load_client(client_id)
    require("admin")
    form = _form()
    if form.submit_ok():
        answer = call("POST", _base(client_id), _body(form))
        if answer.ok:
            made = answer.item("notifiers")
            # Rendered, not redirected: the signing secret is shown here once and never
            # goes into a (signed, not encrypted) flash cookie.
            return render_template("web/notifier_created.html", notifier=made)
        form.show_errors(answer.field_errors, answer.message)
    return render_template("web/notifier_form.html", form=form, notifier=None, events=event_names())


@bp.route("/c/<client_id>/notifiers/<notifier_id>", methods=["GET", "POST"])
@signed_in
def notifier(client_id: str, notifier_id: str):
    """The notifier: its settings (a form for admins), its health, the test button."""
    load_client(client_id)
    path = f"{_base(client_id)}/{notifier_id}"
    record = get_one(path, "notifiers")
    form = _form(record)
    if form.submit_ok():
        require("admin")
        answer = call("PUT", path, _body(form))
        if answer.ok:
            flash(f"Notifier {answer.item('notifiers')['name']} saved.")
            return redirect(url_for("web.notifier", client_id=client_id, notifier_id=notifier_id))
        form.show_errors(answer.field_errors, answer.message)
    return render_template(
        "web/notifier_form.html",
        form=form,
        notifier=record,
        events=event_names(),
        can_change=can("admin"),
    )


@bp.post("/c/<client_id>/notifiers/<notifier_id>/test")
@signed_in
def test_notifier(client_id: str, notifier_id: str):
    """Record a `notifier.test` event for this notifier only; the log shows its delivery."""
    load_client(client_id)
    require("admin")
    if ConfirmForm().validate_on_submit():
        answer = call("POST", f"{_base(client_id)}/{notifier_id}/test")
        if not answer.ok:
            flash(answer.message or "The test event could not be sent.")
            return redirect(url_for("web.notifier", client_id=client_id, notifier_id=notifier_id))
        flash("Test event queued: its delivery shows below within seconds.")
    return redirect(url_for("web.deliveries", client_id=client_id, notifier_id=notifier_id))


@bp.post("/c/<client_id>/notifiers/<notifier_id>/rotate-secret")
@signed_in
def rotate_notifier_secret(client_id: str, notifier_id: str):
    """A new signing secret, shown once; the old one stops signing at once."""
    load_client(client_id)
    require("admin")
    if not ConfirmForm().validate_on_submit():
        abort(400)
    answer = call("POST", f"{_base(client_id)}/{notifier_id}/rotate-secret")
    if not answer.ok:
        flash(answer.message or "The secret could not be changed.")
        return redirect(url_for("web.notifier", client_id=client_id, notifier_id=notifier_id))
    return render_template("web/notifier_created.html", notifier=answer.item("notifiers"))


@bp.get("/c/<client_id>/notifiers/<notifier_id>/deliveries")
@signed_in
def deliveries(client_id: str, notifier_id: str):
    """The notifier's deliveries, newest first: status, attempts, last answer or error."""
    load_client(client_id)
    path = f"{_base(client_id)}/{notifier_id}"
    record = get_one(path, "notifiers")
    token = request.args.get("next", "")
    page = get(f"{path}/deliveries", limit=DELIVERIES_PER_PAGE, nextToken=token)
    return render_template(
        "web/deliveries.html",
        notifier=record,
        can_change=can("admin"),
        **page_values(page, "deliveries", token),
    )


@bp.route("/c/<client_id>/notifiers/<notifier_id>/delete", methods=["GET", "POST"])
@signed_in
def delete_notifier(client_id: str, notifier_id: str):
    load_client(client_id)
    require("admin")
    path = f"{_base(client_id)}/{notifier_id}"
    record = get_one(path, "notifiers")
    return confirm_then_delete(
        path,
        back=url_for("web.notifiers", client_id=client_id),
        question=f"Delete the notifier {record['name']}?",
        consequence="Events are no longer sent to it; its delivery log is deleted too.",
        action="Delete notifier",
        done=f"Notifier {record['name']} deleted.",
    )
