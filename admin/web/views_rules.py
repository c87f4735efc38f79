"""Rules of a credential, proxy or target, and the explainer of a proxy's decision."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from admin.web import bp
from admin.web.confirm import confirm_then_delete
from admin.web.core_api import call, get, get_one
from admin.web.forms import ExplainForm, RuleForm, name_value_lines
from admin.web.scopes import scope_parent
from admin.web.session import load_client, require, signed_in


def _check(name: str, value: str, presence: str) -> list[dict]:
    if not name:
        return []
    return [{"namePattern": name, "valuePattern": value or None, "presence": presence}]


def rule_body(form: RuleForm) -> dict:
    methods = [m.strip().upper() for m in (form.methods.data or "").split(",") if m.strip()]
    body = {
        "effect": form.effect.data,
        "priority": form.priority.data or 0,
        "methods": methods,
        "headerChecks": _check(form.header_name.data, form.header_value.data,
                               form.header_presence.data),
        "queryChecks": _check(form.query_name.data, form.query_value.data,
                              form.query_presence.data),
        "regexFlags": form.regex_flags.data or "",
    }  # fmt: skip
    if form.path_pattern.data:
        body |= {"pathPattern": form.path_pattern.data, "pathPresence": form.path_presence.data}
    if form.notes.data:
        body["notes"] = form.notes.data
    return body


@bp.get("/c/<client_id>/<kind>/<parent_id>/rules")
@signed_in
def rules(client_id: str, kind: str, parent_id: str):
    load_client(client_id)
    parent = scope_parent(client_id, kind, parent_id)
    items = get(f"/clients/{client_id}/{kind}/{parent_id}/rules").items("rules")
    return render_template("web/rules.html", parent=parent, rules=items)


@bp.route("/c/<client_id>/<kind>/<parent_id>/rules/new", methods=["GET", "POST"])
@signed_in
def new_rule(client_id: str, kind: str, parent_id: str):
    load_client(client_id)
    require("admin")
    parent = scope_parent(client_id, kind, parent_id)
    form = RuleForm()
    if form.submit_ok():
        answer = call("POST", f"/clients/{client_id}/{kind}/{parent_id}/rules", rule_body(form))
        if answer.ok:
            flash(f"Rule {answer.item('rules')['ruleId']} added.")
            return redirect(
                url_for("web.rules", client_id=client_id, kind=kind, parent_id=parent_id)
            )
        form.show_errors(answer.field_errors, answer.message)
    return render_template("web/rule_new.html", parent=parent, form=form)


@bp.route("/c/<client_id>/<kind>/<parent_id>/rules/<rule_id>/delete", methods=["GET", "POST"])
@signed_in
def delete_rule(client_id: str, kind: str, parent_id: str, rule_id: str):
    load_client(client_id)
    require("admin")
    scope_parent(client_id, kind, parent_id)
    return confirm_then_delete(
        f"/clients/{client_id}/{kind}/{parent_id}/rules/{rule_id}",
        back=url_for("web.rules", client_id=client_id, kind=kind, parent_id=parent_id),
        question="Delete this rule?",
        consequence="Requests are decided without it from the next second on.",
        action="Delete rule",
        done="Rule deleted.",
    )


@bp.route("/c/<client_id>/proxies/<proxy_id>/explain", methods=["GET", "POST"])
@signed_in
def explain(client_id: str, proxy_id: str):
    """Enter a request; see each scope's decision and the rule that made it."""
    load_client(client_id)
    proxy = get_one(f"/clients/{client_id}/proxies/{proxy_id}", "proxies")
    form = ExplainForm()
    explanation = None
    if form.submit_ok():
        answer = call(
            "POST",
            f"/clients/{client_id}/proxies/{proxy_id}/explain",
            {
                "method": form.method.data,
                "path": form.path.data,
                "headers": name_value_lines(form.headers.data),
                "query": form.query.data or "",
            },
        )
        if answer.ok:
            explanation = answer.item("explanations")
        else:
            form.show_errors(answer.field_errors, answer.message)
    return render_template("web/explain.html", proxy=proxy, form=form, explanation=explanation)
