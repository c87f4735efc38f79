"""A client's budget (balance, threshold, ledger, grants) and the payload filters of a scope."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from admin.web import bp
from admin.web.core_api import call, get, get_one
from admin.web.forms import ConfirmForm
from admin.web.forms_budget import FilterForm, GrantForm, ThresholdForm
from admin.web.session import can, load_client, require, signed_in
from admin.web.views_rules import _parent

ENTRIES_PER_PAGE = 20
# The scopes of a proxy, in the order the data plane applies their filters.
PROXY_SCOPES = (
    ("target credential", "credentials", "proxyTargetCredentialId"),
    ("target", "targets", "proxyTargetId"),
    ("proxy credential", "credentials", "proxyProxyCredentialId"),
    ("proxy", "proxies", "proxyId"),
)


@bp.route("/c/<client_id>/budget", methods=["GET", "POST"])
@signed_in
def budget(client_id: str):
    """Balance and threshold, a page of ledger entries, and (admins) the grant form."""
    load_client(client_id)
    base = f"/clients/{client_id}/budget"
    threshold_form = ThresholdForm(prefix="th")
    grant_form = GrantForm(prefix="gr")
    if can("admin") and threshold_form.submit_ok():
        answer = call("PUT", base, {"lowBudgetThreshold": threshold_form.threshold.data.strip()})
        if answer.ok:
            flash(f"Low-budget threshold set to {answer.item('budget')['lowBudgetThreshold']}.")
            return redirect(url_for("web.budget", client_id=client_id))
        threshold_form.show_errors(answer.field_errors, answer.message)
    if can("admin") and grant_form.submit_ok():
        body = {"amount": grant_form.amount.data.strip()}
        if grant_form.description.data:
            body["description"] = grant_form.description.data
        answer = call("POST", f"{base}/grants", body)
        if answer.ok:
            flash(f"Granted {answer.item('entries')['amount']} credits.")
            return redirect(url_for("web.budget", client_id=client_id))
        grant_form.show_errors(answer.field_errors, answer.message)
    state = get_one(base, "budget")
    if not threshold_form.is_submitted():
        threshold_form.threshold.data = state["lowBudgetThreshold"]
    before = request.args.get("before", "")
    page = get(f"{base}/entries", limit=ENTRIES_PER_PAGE, before=before)
    return render_template(
        "web/budget.html",
        budget=state,
        entries=page.items("entries") if page.ok else [],
        paging_error="" if page.ok else page.message,
        next_before=page.body.get("nextBefore") if page.ok else None,
        first_page=not before,
        threshold_form=threshold_form,
        grant_form=grant_form,
    )


def _filters_url(client_id: str, kind: str, parent_id: str) -> str:
    return url_for("web.filters", client_id=client_id, kind=kind, parent_id=parent_id)


def _proxy_scopes(client_id: str, kind: str, parent_id: str) -> list[dict]:
    """For a proxy: its four scopes, in application order, with their filter pages."""
    if kind != "proxies":
        return []
    proxy = get_one(f"/clients/{client_id}/proxies/{parent_id}", "proxies")
    return [
        {"label": label, "url": _filters_url(client_id, scope_kind, proxy[key])}
        for label, scope_kind, key in PROXY_SCOPES
    ]


@bp.route("/c/<client_id>/<kind>/<parent_id>/filters", methods=["GET", "POST"])
@signed_in
def filters(client_id: str, kind: str, parent_id: str):
    """A scope's payload filters in the order they apply; admins add them here."""
    load_client(client_id)
    parent = _parent(client_id, kind, parent_id)
    base = f"/clients/{client_id}/{kind}/{parent_id}/filters"
    form = FilterForm()
    if can("admin") and form.submit_ok():
        body = {"action": form.action.data, "paths": form.path_lines()}
        if form.notes.data:
            body["notes"] = form.notes.data
        answer = call("POST", base, body)
        if answer.ok:
            flash(f"Filter {answer.item('filters')['filterId']} added.")
            return redirect(_filters_url(client_id, kind, parent_id))
        form.show_errors(answer.field_errors, answer.message)
    return render_template(
        "web/filters.html",
        parent=parent,
        filters=get(base).items("filters"),
        form=form,
        scopes=_proxy_scopes(client_id, kind, parent_id),
    )


@bp.route("/c/<client_id>/<kind>/<parent_id>/filters/<filter_id>/delete", methods=["GET", "POST"])
@signed_in
def delete_filter(client_id: str, kind: str, parent_id: str, filter_id: str):
    load_client(client_id)
    require("admin")
    _parent(client_id, kind, parent_id)
    back = _filters_url(client_id, kind, parent_id)
    if ConfirmForm().validate_on_submit():
        answer = call("DELETE", f"/clients/{client_id}/{kind}/{parent_id}/filters/{filter_id}")
        flash("Filter deleted." if answer.ok else answer.message)
        return redirect(back)
    return render_template(
        "web/confirm.html",
        question="Delete this payload filter?",
        consequence="Answers are passed on without it from the next configuration poll on.",
        action="Delete filter",
        back=back,
    )
