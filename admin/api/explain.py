"""The rule explainer: what the data plane would decide for a request, scope by scope.

It evaluates with the data plane's own code: the same path canonicalisation,
the same scopes (`models.rule_scopes.proxy_scopes`), the same `authorize`,
including both readings of a path that carries `;` parameters.
"""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import parse_qsl

from sqlalchemy import or_, select

from admin.api.common import api_blueprint, load_body
from admin.api.proxies import proxy_for
from admin.errors import invalid
from admin.extensions import db
from admin.http import envelope
from admin.openapi import doc
from admin.schemas.explain import ExplainRequestSchema, ExplanationSchema
from models import Rule
from models.rule_engine import RequestFacts, authorize
from models.rule_scopes import proxy_scopes
from models.target_url import PathEscapeError, canonical_path, path_readings

bp = api_blueprint("explain")


@bp.post("/clients/<client_id>/proxies/<proxy_id>/explain")
@doc(
    "Explain how the proxy's rules decide a request, scope by scope",
    "rules",
    body=ExplainRequestSchema,
    envelope="explanations",
    schema=ExplanationSchema,
    errors=(400, 401, 404, 413),
)
def explain(client_id: str, proxy_id: str):
    proxy = proxy_for(client_id, proxy_id)
    values = load_body(ExplainRequestSchema())
    try:
        path = canonical_path(values["path"].partition("?")[0].lstrip("/"))
    except PathEscapeError as exc:
        raise invalid("path", f"The gateway refuses this path (400): {exc}") from exc
    of_proxy = or_(
        Rule.credential_id.in_((proxy.proxy_credential_id, proxy.target_credential_id)),
        Rule.proxy_id == proxy.id,
        Rule.target_id == proxy.target_id,
    )
    rules: dict[str, list[Rule]] = defaultdict(list)
    for rule in db.session.scalars(select(Rule).where(of_proxy)):
        rules[rule.parent_id].append(rule)
    facts = RequestFacts(
        method=values["method"].upper(),
        path=path,
        headers=list(values["headers"].items()),
        query=parse_qsl(values["query"].lstrip("?"), keep_blank_values=True),
    )
    scopes = proxy_scopes(proxy, rules)
    decision = authorize(scopes, facts)
    explanation = {
        "allowed": decision.allowed,
        "scope": decision.scope,
        "ruleId": decision.rule_id,
        "path": path,
        "readings": list(path_readings(path)),
        "scopes": [
            {
                "scope": scope.name,
                "allowed": (verdict := scope.decide(facts)).allowed,
                "ruleId": verdict.rule_id,
                "defaultEffect": scope.default_effect.value,
                "matchedRules": [
                    {"ruleId": rule.id, "effect": rule.effect.value, "priority": rule.priority}
                    for rule in scope.matching(facts)
                ],
            }
            for scope in scopes
        ],
    }
    return envelope("explanations", [ExplanationSchema().dump(explanation)])
