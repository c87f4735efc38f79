"""Rule evaluation: every check kind, presence, flags, and the scope semantics."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from models.rule_engine import RequestFacts, authorize, build_scope, compile_rule

_ids = iter(range(1, 10_000))


def rule(effect: str = "allow", **fields) -> SimpleNamespace:
    """A stored rule's attributes, as the store hands them over."""
    values = {
        "id": f"rule_{next(_ids)}",
        "effect": effect,
        "priority": 0,
        "methods": [],
        "path_pattern": None,
        "path_presence": "present",
        "header_checks": [],
        "query_checks": [],
        "regex_flags": "",
    }
    return SimpleNamespace(**{**values, **fields})


def facts(method="GET", path="/v1/users/7", headers=(), query=()) -> RequestFacts:
    return RequestFacts(method, path, list(headers), list(query))


def check(name: str, value: str | None = None, presence: str = "present") -> dict:
    return {"namePattern": name, "valuePattern": value, "presence": presence}


@pytest.mark.parametrize(
    ("fields", "request_facts", "expected"),
    [
        ({}, facts(), True),
        ({"methods": ["POST", "DELETE"]}, facts("delete"), True),
        ({"methods": ["POST"]}, facts("GET"), False),
        ({"path_pattern": "^/v1/users/"}, facts(), True),
        ({"path_pattern": "^/v2/"}, facts(), False),
        ({"path_pattern": "^/v2/", "path_presence": "absent"}, facts(), True),
        ({"path_pattern": "^/V1/", "regex_flags": "i"}, facts(), True),
        ({"path_pattern": "^/V1/"}, facts(), False),
        ({"header_checks": [check("^X-User-Auth$")]}, facts(headers=[("x-user-auth", "t")]), True),
        ({"header_checks": [check("^X-User-Auth$")]}, facts(headers=[("x-other", "t")]), False),
        (
            {"header_checks": [check("^x-tier$", "^gold$")]},
            facts(headers=[("X-Tier", "silver"), ("X-Tier", "gold")]),
            True,
        ),
        (
            {"header_checks": [check("^x-tier$", "^gold$")]},
            facts(headers=[("X-Tier", "GOLD")]),
            False,
        ),
        (
            {"header_checks": [check("^x-debug$", presence="absent")]},
            facts(headers=[("X-Debug", "1")]),
            False,
        ),
        ({"header_checks": [check("^x-debug$", presence="absent")]}, facts(), True),
        ({"query_checks": [check("^limit$", r"^\d{1,2}$")]}, facts(query=[("limit", "50")]), True),
        (
            {"query_checks": [check("^limit$", r"^\d{1,2}$")]},
            facts(query=[("limit", "500")]),
            False,
        ),
        ({"query_checks": [check("^Limit$")]}, facts(query=[("limit", "5")]), False),
        (
            {"methods": ["GET"], "path_pattern": "^/v1/", "query_checks": [check("^a$")]},
            facts(query=[("b", "1")]),
            False,
        ),
    ],
)
def test_rule_matching(fields, request_facts, expected):
    assert compile_rule(rule(**fields)).matches(request_facts) is expected


def test_matching_deny_wins_over_a_higher_priority_allow():
    allow = rule("allow", priority=1000)
    deny = rule("deny", priority=1, methods=["DELETE"])
    scope = build_scope("proxy", "allow", [allow, deny])
    denied = scope.decide(facts("DELETE"))
    assert (denied.allowed, denied.scope, denied.rule_id) == (False, "proxy", deny.id)
    allowed = scope.decide(facts("GET"))
    assert (allowed.allowed, allowed.rule_id) == (True, allow.id)


@pytest.mark.parametrize(("default", "expected"), [("allow", True), ("deny", False)])
def test_no_match_falls_back_to_the_default_effect(default, expected):
    scope = build_scope("target", default, [rule("allow", methods=["POST"])])
    decision = scope.decide(facts("GET"))
    assert (decision.allowed, decision.scope, decision.rule_id) == (expected, "target", None)


def test_every_scope_must_allow_and_the_denying_one_is_named():
    blocker = rule("deny", path_pattern="^/admin")
    scopes = [
        build_scope("proxyCredential", "allow", []),
        build_scope("targetCredential", "allow", [rule("allow")]),
        build_scope("proxy", "allow", [blocker]),
        build_scope("target", "deny", [rule("allow", path_pattern="^/")]),
    ]
    denied = authorize(scopes, facts(path="/admin/users"))
    assert (denied.allowed, denied.scope, denied.rule_id) == (False, "proxy", blocker.id)
    assert authorize(scopes, facts(path="/v1/users")).allowed

    strict_target = [*scopes[:3], build_scope("target", "deny", [])]
    denied = authorize(strict_target, facts(path="/v1/users"))
    assert (denied.allowed, denied.scope, denied.rule_id) == (False, "target", None)


@pytest.mark.parametrize(
    "path", ["/secret;x/data", "/secret/data;x", "/;a/secret;b/data;c", "/secret;/data"]
)
def test_a_deny_on_either_reading_of_path_parameters_wins(path):
    """Servlet containers read `/secret;x/data` as `/secret/data`: a deny on it still denies."""
    blocker = rule("deny", path_pattern="^/secret/data$")
    scopes = [build_scope("proxy", "allow", [blocker])]
    denied = authorize(scopes, facts(path=path))
    assert (denied.allowed, denied.scope, denied.rule_id) == (False, "proxy", blocker.id)
    assert scopes[0].matching(facts(path=path)) == [compile_rule(blocker)]


def test_an_allow_list_must_allow_both_readings():
    allow = rule("allow", path_pattern="^/public/[a-z]+$")
    scopes = [build_scope("target", "deny", [allow])]
    assert authorize(scopes, facts(path="/public/x")).allowed
    # Literal reading `/public;v=1/x` matches no allow rule: the default denies.
    denied = authorize(scopes, facts(path="/public;v=1/x"))
    assert (denied.allowed, denied.scope, denied.rule_id) == (False, "target", None)
    # Literal `/public/x;y` does not match, stripped `/public/x` does: still denied.
    assert not authorize(scopes, facts(path="/public/x;y")).allowed


def test_a_literal_deny_on_the_parameter_itself_still_applies():
    blocker = rule("deny", path_pattern=";jsessionid=")
    scopes = [build_scope("proxy", "allow", [blocker])]
    assert not authorize(scopes, facts(path="/a;jsessionid=1/b")).allowed
    assert authorize(scopes, facts(path="/a/b")).allowed


@pytest.mark.parametrize(
    ("value", "expected"),
    [("evil\udcff", False), ("\udcc3\udca9\udcffevil", True), ("ok", True)],
)
def test_header_and_query_values_that_are_not_utf8_can_be_matched(value, expected):
    """Raw bytes arrive as lone surrogates; RE2 cannot take those, rules read them as U+FFFD."""
    blocker = rule("deny", header_checks=[check("^x-tag$", "^evil")])
    query_blocker = rule("deny", query_checks=[check("^tag$", "^evil")])
    for scope in (
        build_scope("proxy", "allow", [blocker]),
        build_scope("proxy", "allow", [query_blocker]),
    ):
        decision = authorize(
            [scope],
            facts(headers=[("X-Tag", value), ("X-\udcff", "\udcff")], query=[("tag", value)]),
        )
        assert decision.allowed is expected
