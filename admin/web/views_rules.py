"""Rules of a credential, proxy or target, and the explainer of a proxy's decision."""

from __future__ import annotations

import json
from typing import Any

from flask import flash, redirect, render_template, url_for

from admin.web import bp
from admin.web.confirm import confirm_then_delete
from admin.web.core_api import call, get, get_one
from admin.web.forms import ExplainForm, RuleForm, name_list, name_value_lines
from admin.web.scopes import scope_parent
from admin.web.session import load_client, require, signed_in
from models.json_limits import loads


def _checks(form: RuleForm, rows) -> list[dict]:
    return [
        {
            "namePattern": row.form.name.data.strip(),
            "valuePattern": (row.form.value.data or "").strip() or None,
            "presence": row.form.presence.data,
        }
        for row in form.filled_rows(rows)
    ]


def _body_checks(form: RuleForm) -> list[dict]:
    checks = []
    for row in form.filled_rows(form.body_checks):
        check: dict[str, Any] = {"path": row.form.path.data.strip()}
        if (row.form.value.data or "").strip():
            check["valuePattern"] = row.form.value.data.strip()
        if (row.form.equals.data or "").strip():
            check["equals"] = equals_value(row.form.equals.data.strip())
        checks.append(check | {"presence": row.form.presence.data})
    return checks


def equals_value(text: str) -> Any:
    """A typed `equals`: JSON if it reads as JSON (`1`, `true`, `null`, `"1"`), else the text."""
    try:
        return loads(text)
    except ValueError:
        return text


def equals_text(value: Any) -> str:
    """`equals` as typed back: a string as itself unless it would read as other JSON."""
    if isinstance(value, str) and equals_value(value) == value:
        return value
    return json.dumps(value)


def rule_body(form: RuleForm) -> dict:
    """The API's rule from the form: every field is sent, so an update can also clear one."""
    methods = [m.strip().upper() for m in (form.methods.data or "").split(",") if m.strip()]
    return {
        "effect": form.effect.data,
        "priority": form.priority.data or 0,
        "methods": methods,
        "pathPattern": form.path_pattern.data or None,
        "pathPresence": form.path_presence.data,
        "headerChecks": _checks(form, form.header_checks),
        "queryChecks": _checks(form, form.query_checks),
        "bodyChecks": _body_checks(form),
        "bodyPattern": form.body_pattern.data or None,
        "bodyPatternPresence": form.body_pattern_presence.data,
        "mcpMethods": name_list(form.mcp_methods.data),
        "mcpTools": name_list(form.mcp_tools.data),
        "mcpToolsPresence": form.mcp_tools_presence.data,
        "regexFlags": form.regex_flags.data or "",
        "notes": form.notes.data or None,
    }


def rule_form(rule: dict | None = None) -> RuleForm:
    """The form over what was posted, else over `rule` (a new rule: the defaults)."""
    if rule is None:
        form = RuleForm()
    else:
        form = RuleForm(
            effect=rule["effect"],
            priority=rule["priority"],
            methods=", ".join(rule.get("methods") or []),
            path_pattern=rule.get("pathPattern") or "",
            path_presence=rule.get("pathPresence") or "present",
            header_checks=[_row(c) for c in rule.get("headerChecks") or []],
            query_checks=[_row(c) for c in rule.get("queryChecks") or []],
            body_checks=[_body_row(c) for c in rule.get("bodyChecks") or []],
            body_pattern=rule.get("bodyPattern") or "",
            body_pattern_presence=rule.get("bodyPatternPresence") or "present",
            mcp_methods=", ".join(rule.get("mcpMethods") or []),
            mcp_tools="\n".join(rule.get("mcpTools") or []),
            mcp_tools_presence=rule.get("mcpToolsPresence") or "present",
            regex_flags=rule.get("regexFlags") or "",
            notes=rule.get("notes") or "",
        )
    return form


def _row(check: dict) -> dict:
    return {
        "name": check["namePattern"],
        "value": check.get("valuePattern") or "",
        "presence": check.get("presence") or "present",
    }


def _body_row(check: dict) -> dict:
    return {
        "path": check["path"],
        "value": check.get("valuePattern") or "",
        "equals": equals_text(check["equals"]) if "equals" in check else "",
        "presence": check.get("presence") or "present",
    }


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
    form = rule_form()
    if form.submit_ok():
        body = {k: v for k, v in rule_body(form).items() if v is not None}
        answer = call("POST", f"/clients/{client_id}/{kind}/{parent_id}/rules", body)
        if answer.ok:
            flash(f"Rule {answer.item('rules')['ruleId']} added.")
            return redirect(
                url_for("web.rules", client_id=client_id, kind=kind, parent_id=parent_id)
            )
        form.show_errors(answer.field_errors, answer.message)
    form.add_spare_rows()  # after validation: spare rows are for typing into
    return render_template("web/rule_new.html", parent=parent, form=form, rule=None)


@bp.route("/c/<client_id>/<kind>/<parent_id>/rules/<rule_id>", methods=["GET", "POST"])
@signed_in
def edit_rule(client_id: str, kind: str, parent_id: str, rule_id: str):
    """Change a rule in place (the API's PUT); live on the data plane within a second."""
    load_client(client_id)
    parent = scope_parent(client_id, kind, parent_id)
    path = f"/clients/{client_id}/{kind}/{parent_id}/rules/{rule_id}"
    rule = get_one(path, "rules")
    form = rule_form(rule)
    if form.submit_ok():
        require("admin")
        answer = call("PUT", path, rule_body(form))
        if answer.ok:
            flash(f"Rule {rule_id} saved.")
            return redirect(
                url_for("web.rules", client_id=client_id, kind=kind, parent_id=parent_id)
            )
        form.show_errors(answer.field_errors, answer.message)
    form.add_spare_rows()  # after validation: spare rows are for typing into
    return render_template("web/rule_new.html", parent=parent, form=form, rule=rule)


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
            }
            | ({"body": form.body.data} if form.body.data else {}),
        )
        if answer.ok:
            explanation = answer.item("explanations")
        else:
            form.show_errors(answer.field_errors, answer.message)
    return render_template("web/explain.html", proxy=proxy, form=form, explanation=explanation)
