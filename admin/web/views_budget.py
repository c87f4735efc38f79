"""A client's budget: balance, low-budget threshold, the ledger, and grants."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from admin.web import bp
from admin.web.core_api import call, get, get_one, page_values
from admin.web.forms_budget import GrantForm, ThresholdForm
from admin.web.session import can, load_client, signed_in

ENTRIES_PER_PAGE = 20


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
        threshold_form=threshold_form,
        grant_form=grant_form,
        **page_values(page, "entries", before, next_field="nextBefore"),
    )
