"""The rule explainer: what the data plane would decide for a request, scope by scope.

It evaluates with the data plane's own code: the same path canonicalisation,
the same scopes (`models.rule_scopes.proxy_scopes`), the same `authorize`,
including both readings of a path that carries `;` parameters. It also names
what the limit stage and the payload filters would apply to the request: the
proxy's rate limits (capped as the data plane caps them), its active meters
(matched by `models.meter_engine`, as the data plane matches them) and its
filters in the order they run (`models.payload_filter.filter_chains`).

With a `body`, rules that read the body see it as the data plane does
(`models.request_body.inspect_body`, whose refusals it reports, only for
proxies whose policy reads the body); on a proxy marked `mcp`, a POST's
JSON-RPC call(s) are parsed by the data plane's parser (`models.mcp.parse_calls`)
and each call is decided on its own (`RequestFacts.for_call`): any denied call
denies the request.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
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
from admin.schemas.explain import MAX_BODY_BYTES, ExplainRequestSchema, ExplanationSchema
from models import Meter, Proxy, Rule
from models.mcp import McpCall, batch_refusal, parse_calls
from models.meter_engine import NOT_JSON, compile_meter
from models.payload_filter import SCOPE_ORDER
from models.request_body import BodyRefusal, inspect_body
from models.request_body import facts as body_facts
from models.rule_engine import (
    BodyFacts,
    Decision,
    RequestFacts,
    Scope,
    authorize,
    policy_reads_body,
)
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
    scopes = proxy_scopes(proxy, rules)
    body = _body(proxy, scopes, values.get("body"))
    facts = RequestFacts(
        method=values["method"].upper(),
        path=path,
        headers=list(values["headers"].items()),
        query=parse_qsl(values["query"].lstrip("?"), keep_blank_values=True),
        body=body if isinstance(body, BodyFacts) else None,
    )
    calls = _calls(proxy, facts)
    too_many = batch_refusal(calls)
    if too_many is not None:  # refused whole, as the data plane does, before any call is decided
        body, calls = too_many, ()
    candidates = [facts.for_call(call) for call in calls] or [facts]
    verdicts = [authorize(scopes, candidate) for candidate in candidates]
    # As the data plane: the first denied call decides, else the last call's allowance.
    shown = next((i for i, verdict in enumerate(verdicts) if not verdict.allowed), -1)
    decision = verdicts[shown]
    refused = body if isinstance(body, BodyRefusal) else None
    explanation = {
        "allowed": decision.allowed and refused is None,
        "scope": decision.scope,
        "ruleId": decision.rule_id,
        "bodyRefusal": None
        if refused is None
        else {"status": refused.status, "code": refused.code, "message": refused.message},
        "path": path,
        "readings": list(path_readings(path)),
        "scopes": [_scope(scope, candidates[shown]) for scope in scopes],
        "mcpCalls": [_call(call, verdict) for call, verdict in zip(calls, verdicts, strict=False)],
    }
    explanation |= {
        "rateLimits": _rate_limits(proxy),
        "meters": _meters(proxy, _with_body(candidates[0], values.get("body"))),
        "filters": _filters(proxy),
    }
    return envelope("explanations", [ExplanationSchema().dump(explanation)])


def _body(proxy: Proxy, scopes: list[Scope], text: str | None) -> BodyFacts | BodyRefusal | None:
    """The body as the data plane reads it: only for proxies whose policy needs it (an MCP
    proxy, or a rule that checks the body or a call), through the same inspection."""
    if text is None or not policy_reads_body(proxy.mcp, scopes):
        return None
    return inspect_body(text.encode(), None, MAX_BODY_BYTES)


def _with_body(facts: RequestFacts, text: str | None) -> RequestFacts:
    """The facts meters see: they read the body for their own checks whatever the rules do."""
    if text is None or facts.body is not None:
        return facts
    return replace(facts, body=body_facts(text.encode()))


def _calls(proxy: Proxy, facts: RequestFacts) -> tuple[McpCall, ...]:
    """The JSON-RPC calls the data plane would decide one by one (MCP proxies' POSTs)."""
    if not proxy.mcp or facts.method != "POST" or facts.body is None:
        return ()
    parsed = parse_calls(facts.body.document) if facts.body.document is not NOT_JSON else None
    return parsed[0] if parsed else ()


def _scope(scope: Scope, facts: RequestFacts) -> dict:
    verdict = scope.decide(facts)
    return {
        "scope": scope.name,
        "allowed": verdict.allowed,
        "ruleId": verdict.rule_id,
        "defaultEffect": scope.default_effect.value,
        "matchedRules": [
            {"ruleId": rule.id, "effect": rule.effect.value, "priority": rule.priority}
            for rule in scope.matching(facts)
        ],
    }


def _call(call: McpCall, decision: Decision) -> dict:
    return {
        "method": call.method,
        "tool": call.tool,
        "id": call.id,
        "allowed": decision.allowed,
        "scope": decision.scope,
        "ruleId": decision.rule_id,
    }


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

    Without a request body, a meter whose method/path/header/query part matches but
    which also checks body fields is `dependsOnBody` (it counts only if the body
    passes its checks); with one, its body checks are applied."""
    rows = db.session.scalars(
        select(Meter)
        .where(Meter.proxy_id == proxy.id, Meter.active.is_(True))
        .order_by(Meter.created_at, Meter.id)
    )
    answer = []
    for row in rows:
        meter = compile_meter(row)
        if facts.body is not None:
            matches = meter.matches(facts, facts.body.document)
        else:
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
                "dependsOnBody": matches and meter.needs_body and facts.body is None,
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
