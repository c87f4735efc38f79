"""Rules on credentials, proxies and targets: list, create, get, update, delete."""

from __future__ import annotations

from admin.api.common import api_blueprint, assign, load_body
from admin.api.scopes import add_scoped_routes, find_child, find_parent
from admin.auth import client_for, current_user
from admin.extensions import db
from admin.http import envelope, message_only
from admin.openapi import doc
from admin.schemas.rules import RuleSchema, check_rule_patterns, normalize_rule
from models import Rule
from models.enums import Role
from models.patterns import check_flags

bp = api_blueprint("rules")

RULE_DEFAULTS = {
    "priority": 0,
    "methods": [],
    "path_pattern": None,
    "path_presence": "present",
    "header_checks": [],
    "query_checks": [],
    "body_checks": [],
    "body_pattern": None,
    "body_pattern_presence": "present",
    "mcp_methods": [],
    "mcp_tools": [],
    "mcp_tools_presence": "present",
    "regex_flags": "",
    "notes": None,
}


def _rule(client_id: str, parent_kind: str, parent_id: str, rule_id: str) -> Rule:
    return find_child(Rule, find_parent(client_id, parent_kind, parent_id), rule_id, "Rule")


def _checked(values: dict) -> dict:
    """Compile the complete rule's patterns (400 naming the field) and normalise its flags."""
    check_rule_patterns(values)
    return {**values, "regex_flags": check_flags(values.get("regex_flags") or "")}


def _rule_values(rule: Rule) -> dict:
    return {key: getattr(rule, key) for key in RULE_DEFAULTS} | {"effect": rule.effect}


@doc(
    "List rules, highest priority first",
    "rules",
    envelope="rules",
    schema=RuleSchema,
    errors=(401, 404),
)
def list_rules(client_id: str, parent_kind: str, parent_id: str):
    client_for(client_id)
    parent = find_parent(client_id, parent_kind, parent_id)
    rules = sorted(parent.rules, key=lambda r: (-r.priority, r.created_at, r.id))
    return envelope("rules", RuleSchema(many=True).dump(rules))


@doc(
    "Create a rule (admin)",
    "rules",
    body=RuleSchema,
    envelope="rules",
    schema=RuleSchema,
    status=201,
)
def create_rule(client_id: str, parent_kind: str, parent_id: str):
    client_for(client_id, Role.ADMIN)
    parent = find_parent(client_id, parent_kind, parent_id)
    values = _checked(RULE_DEFAULTS | normalize_rule(load_body(RuleSchema())))
    rule = Rule(client_id=client_id, created_by=current_user().id, **values)
    rule.attach_to(parent_kind, parent.id)
    db.session.add(rule)
    db.session.commit()
    return envelope("rules", [RuleSchema().dump(rule)], status=201)


@doc("Get a rule", "rules", envelope="rules", schema=RuleSchema, errors=(401, 404))
def get_rule(client_id: str, parent_kind: str, parent_id: str, rule_id: str):
    client_for(client_id)
    rule = _rule(client_id, parent_kind, parent_id, rule_id)
    return envelope("rules", [RuleSchema().dump(rule)])


@doc("Update a rule (admin)", "rules", body=RuleSchema, envelope="rules", schema=RuleSchema)
def update_rule(client_id: str, parent_kind: str, parent_id: str, rule_id: str):
    client_for(client_id, Role.ADMIN)
    rule = _rule(client_id, parent_kind, parent_id, rule_id)
    changes = normalize_rule(load_body(RuleSchema(), partial=True))
    assign(rule, _checked(_rule_values(rule) | changes))
    db.session.commit()
    return envelope("rules", [RuleSchema().dump(rule)])


@doc("Delete a rule (admin)", "rules", errors=(401, 403, 404))
def delete_rule(client_id: str, parent_kind: str, parent_id: str, rule_id: str):
    client_for(client_id, Role.ADMIN)
    rule = _rule(client_id, parent_kind, parent_id, rule_id)
    db.session.delete(rule)
    db.session.commit()
    return message_only("Rule deleted successfully")


add_scoped_routes(bp, "rules", list_rules, ["GET"])
add_scoped_routes(bp, "rules", create_rule, ["POST"])
add_scoped_routes(bp, "rules", get_rule, ["GET"], "/<rule_id>")
add_scoped_routes(bp, "rules", update_rule, ["PUT"], "/<rule_id>")
add_scoped_routes(bp, "rules", delete_rule, ["DELETE"], "/<rule_id>")
