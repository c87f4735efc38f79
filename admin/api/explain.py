"""The rule explainer: what the data plane would decide for a request, scope by scope.

It evaluates with the data plane's own code: the same path canonicalisation,
the same scopes (`models.rule_scopes.proxy_scopes`), the same `authorize`,
including both readings of a path that carries `;` parameters. It also names
what the limit stage and the payload filters would apply to the request: the
proxy's rate limits (capped as the data plane caps them), its active meters
(matched by `models.meter_engine`, as the data plane matches them) and its
filters in the order they run (`models.payload_filter.filter_chains`).
"""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import parse_qsl

from flask import current_app
from sqlalchemy import or_, select

from admin.api.common import api_blueprint, load_body
from admin.api.filters import filters_of
from admin.api.proxies import proxy_for
from admin.errors import invalid
from admin.extensions import db
from admin.http import envelope
from admin.openapi import doc
from admin.schemas.explain import ExplainRequestSchema, ExplanationSchema
from models import Meter, Proxy, Rule
from models.meter_engine import compile_meter
from models.payload_filter import SCOPE_ORDER
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
    explanation |= {
        "rateLimits": _rate_limits(proxy),
        "meters": _meters(proxy, facts),
        "filters": _filters(proxy),
    }
    return envelope("explanations", [ExplanationSchema().dump(explanation)])


def _rate_limits(proxy: Proxy) -> list[dict]:
    """The proxy's rate limits as enforced: its values capped by the platform maxima."""
    settings = current_app.config["PORTCULLIS_SETTINGS"]
    return [
        {"window": "minute", "limit": min(proxy.max_requests_per_minute,
                                          settings.max_requests_per_minute)},
        {"window": "day", "limit": min(proxy.max_requests_per_day, settings.max_requests_per_day)},
    ]  # fmt: skip


def _meters(proxy: Proxy, facts: RequestFacts) -> list[dict]:
    """Every active meter of the proxy and whether the request would count toward it.

    The explainer has no request body: a meter whose method/path/header/query part
    matches but which also checks body fields is `dependsOnBody` (it counts only if
    the body passes its checks)."""
    rows = db.session.scalars(
        select(Meter)
        .where(Meter.proxy_id == proxy.id, Meter.active.is_(True))
        .order_by(Meter.created_at, Meter.id)
    )
    answer = []
    for row in rows:
        meter = compile_meter(row)
        matches = (
            not meter.conditional
            or meter.rule is None
            or any(meter.rule.matches(reading) for reading in facts.readings())
        )
        answer.append(
            {
                "meterId": meter.id,
                "meterName": meter.name,
                "meterType": meter.meter_type,
                "limits": dict(meter.limits),
                "applies": matches,
                "dependsOnBody": matches and meter.needs_body,
            }
        )
    return answer


def _filters(proxy: Proxy) -> list[dict]:
    """The filters of the proxy's four scopes in the order the data plane applies them
    (`SCOPE_ORDER`, creation order within a scope, as `filter_chains` builds them)."""
    parents = zip(
        SCOPE_ORDER,
        ("credential", "target", "credential", "proxy"),
        (proxy.target_credential_id, proxy.target_id, proxy.proxy_credential_id, proxy.id),
        strict=True,
    )
    return [
        {"filterId": row.id, "scope": scope, "action": row.action, "paths": list(row.paths)}
        for scope, kind, parent_id in parents
        for row in filters_of(kind, parent_id)
    ]
