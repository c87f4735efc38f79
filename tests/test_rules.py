"""Rules on credentials, proxies and targets through the Core API.

CRUD on all three parents (four scopes), the accepted body forms (docs flat, docs
nested, blog), validation with RE2 at write time, tenancy, roles and cascades.
"""

from __future__ import annotations

import re

import pytest

from tests.support import (
    assert_error,
    assert_has,
    assert_invalid,
    create,
    credential_body,
    error_fields,
    new_proxy,
    target_body,
)

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SCOPES = ("proxyCredential", "targetCredential", "proxy", "target")
PREFIXES = pytest.mark.parametrize("prefix", ["/api", ""], ids=["api-prefix", "bare"])
OUTPUT_FIELDS = {
    "ruleId",
    "sKey",
    "pKey",
    "parentId",
    "clientId",
    "userId",
    "ruleScope",
    "effect",
    "priority",
    "methods",
    "pathPattern",
    "pathPresence",
    "headerChecks",
    "queryChecks",
    "bodyChecks",
    "bodyPattern",
    "bodyPatternPresence",
    "mcpMethods",
    "mcpTools",
    "mcpToolsPresence",
    "regexFlags",
    "notes",
    "ruleCreatedAt",
    "ruleUpdatedAt",
}


def parent_ids(proxy: dict) -> dict[str, str]:
    """Scope → id of the record that carries that scope's rules."""
    return {
        "proxyCredential": proxy["proxyProxyCredentialId"],
        "targetCredential": proxy["proxyTargetCredentialId"],
        "proxy": proxy["sKey"],
        "target": proxy["proxyTargetId"],
    }


def rules_path(client_id: str, scope: str, parent_id: str, prefix: str = "/api") -> str:
    plural = {"proxy": "proxies", "target": "targets"}.get(scope, "credentials")
    return f"{prefix}/clients/{client_id}/{plural}/{parent_id}/rules"


def new_rule(api, url: str, /, **body) -> dict:
    return create(api, url, {"effect": "allow", **body}, "rules")


@pytest.fixture
def proxy(api, client_id) -> dict:
    return new_proxy(api, client_id)


@pytest.fixture
def rules(api, client_id) -> str:
    """The rules URL of a fresh target (the cheapest parent) for validation tests."""
    target = create(api, f"/api/clients/{client_id}/targets", target_body(), "targets")
    return rules_path(client_id, "target", target["sKey"])


# CRUD on every scope -------------------------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES)
def test_rule_lifecycle_on_every_parent(api, owner, client_id, proxy, scope):
    parent_id = parent_ids(proxy)[scope]
    path = rules_path(client_id, scope, parent_id)
    assert api.get(path).json() == {"rules": [], "message": "Success"}

    body = {
        "effect": "deny",
        "priority": 900,
        "methods": ["DELETE"],
        "pathPattern": "^/api/users/",
        "pathPresence": "present",
        "headerChecks": [
            {"namePattern": "^X-Team$", "valuePattern": "^ops$", "presence": "absent"}
        ],
        "queryChecks": [{"namePattern": "^debug$"}],
        "regexFlags": "i",
        "notes": "Prevent user deletion via API",
    }
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    payload = response.json()
    assert set(payload) == {"rules", "message"} and len(payload["rules"]) == 1
    rule = payload["rules"][0]
    assert set(rule) == OUTPUT_FIELDS
    assert rule["ruleId"] == rule["sKey"] and rule["ruleId"]
    assert_has(
        rule,
        {
            "pKey": parent_id,
            "parentId": parent_id,
            "clientId": client_id,
            "userId": owner.id,
            "ruleScope": scope,
            "effect": "deny",
            "priority": 900,
            "methods": ["DELETE"],
            "pathPattern": "^/api/users/",
            "pathPresence": "present",
            "headerChecks": body["headerChecks"],
            "queryChecks": [
                {"namePattern": "^debug$", "valuePattern": None, "presence": "present"}
            ],
            "regexFlags": "i",
            "notes": "Prevent user deletion via API",
        },
    )
    assert TIMESTAMP.match(rule["ruleCreatedAt"]) and TIMESTAMP.match(rule["ruleUpdatedAt"])

    item = f"{path}/{rule['ruleId']}"
    assert api.get(item).json() == {"rules": [rule], "message": "Success"}
    assert api.get(path).json()["rules"] == [rule]

    updated = api.put(item, json={"effect": "allow", "notes": "now allowed"})
    assert updated.status_code == 200, updated.text
    after = updated.json()["rules"][0]
    unchanged = {k: v for k, v in rule.items() if k not in ("effect", "notes", "ruleUpdatedAt")}
    assert_has(after, {**unchanged, "effect": "allow", "notes": "now allowed"})
    assert api.get(item).json()["rules"] == [after]

    deleted = api.delete(item)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"message": "Rule deleted successfully"}
    assert_error(api.get(item), 404, "NOT_FOUND")
    assert_error(api.put(item, json={"notes": "x"}), 404, "NOT_FOUND")
    assert_error(api.delete(item), 404, "NOT_FOUND")
    assert api.get(path).json()["rules"] == []


@PREFIXES
def test_both_path_prefixes_serve_the_same_rules(api, client_id, proxy, prefix):
    path = rules_path(client_id, "proxy", proxy["sKey"], prefix)
    rule = new_rule(api, path, notes=prefix or "bare")
    other = rules_path(client_id, "proxy", proxy["sKey"], "" if prefix else "/api")
    assert api.get(other).json()["rules"] == [rule]
    assert api.get(f"{other}/{rule['ruleId']}").json()["rules"] == [rule]
    assert api.delete(f"{path}/{rule['ruleId']}").status_code == 200
    assert api.get(other).json()["rules"] == []


def test_list_is_highest_priority_first(api, client_id, proxy):
    path = rules_path(client_id, "proxy", proxy["sKey"])
    for priority in (10, 1000, 0, 500):
        new_rule(api, path, priority=priority, notes=str(priority))
    listed = api.get(path).json()["rules"]
    assert [r["priority"] for r in listed] == [1000, 500, 10, 0]
    assert [r["notes"] for r in listed] == ["1000", "500", "10", "0"]


def test_proxy_rules_are_reachable_by_alias(api, client_id):
    proxy = new_proxy(api, client_id, proxyAlias="billing-api")
    by_alias = rules_path(client_id, "proxy", "billing-api")
    rule = new_rule(api, by_alias, priority=7)
    assert rule["pKey"] == rule["parentId"] == proxy["sKey"]
    by_id = rules_path(client_id, "proxy", proxy["sKey"])
    assert api.get(by_id).json()["rules"] == [rule]
    item = f"{by_alias}/{rule['ruleId']}"
    assert api.get(item).json()["rules"] == [rule]
    assert api.put(item, json={"priority": 8}).json()["rules"][0]["priority"] == 8
    assert api.delete(item).json() == {"message": "Rule deleted successfully"}
    assert api.get(by_id).json()["rules"] == []


def test_each_parent_lists_only_its_own_rules(api, client_id, proxy):
    ids = parent_ids(proxy)
    made = {scope: new_rule(api, rules_path(client_id, scope, ids[scope])) for scope in SCOPES}
    for scope in SCOPES:
        assert api.get(rules_path(client_id, scope, ids[scope])).json()["rules"] == [made[scope]]


def test_match_all_rule_gets_defaults(api, rules):
    rule = new_rule(api, rules)
    assert_has(
        rule,
        {
            "effect": "allow",
            "priority": 0,
            "methods": [],
            "pathPattern": None,
            "pathPresence": "present",
            "headerChecks": [],
            "queryChecks": [],
            "bodyChecks": [],
            "bodyPattern": None,
            "bodyPatternPresence": "present",
            "mcpMethods": [],
            "mcpTools": [],
            "mcpToolsPresence": "present",
            "regexFlags": "",
            "notes": None,
        },
    )


def test_fetched_rule_can_be_put_back_unchanged(api, rules):
    rule = new_rule(
        api,
        rules,
        methods=["GET"],
        pathPattern="^/v1/",
        headerChecks=[{"namePattern": "^X-A$", "valuePattern": "b", "presence": "present"}],
        regexFlags="m",
    )
    response = api.put(f"{rules}/{rule['ruleId']}", json=rule)
    assert response.status_code == 200, response.text
    again = response.json()["rules"][0]
    assert {k: v for k, v in again.items() if k != "ruleUpdatedAt"} == {
        k: v for k, v in rule.items() if k != "ruleUpdatedAt"
    }


# Body forms ----------------------------------------------------------------------------------


def test_docs_nested_path_form_is_stored_flat(api, rules):
    body = {
        "effect": "deny",
        "priority": 900,
        "methods": ["DELETE"],
        "path": {"pattern": "^/api/users/", "presence": "present"},
        "notes": "Prevent user deletion via API",
    }
    rule = create(api, rules, body, "rules")
    assert "path" not in rule
    assert_has(rule, {"pathPattern": "^/api/users/", "pathPresence": "present"})


def test_blog_form_is_stored_flat_with_canonical_presence(api, client_id, proxy):
    body = {
        "effect": "allow",
        "methods": ["GET", "POST"],
        "path": {"path": {"pattern": "^/v1/user/"}, "presence": "must_exist"},
        "headers": [
            {
                "name": {"pattern": "^X-User-Auth$"},
                "value": {"pattern": ".*"},
                "presence": "must_exist",
            }
        ],
    }
    path = f"/clients/{client_id}/proxies/{proxy['sKey']}/rules"
    rule = create(api, path, body, "rules")
    assert "path" not in rule and "headers" not in rule
    assert_has(
        rule,
        {
            "methods": ["GET", "POST"],
            "pathPattern": "^/v1/user/",
            "pathPresence": "present",
            "headerChecks": [
                {"namePattern": "^X-User-Auth$", "valuePattern": ".*", "presence": "present"}
            ],
            "queryChecks": [],
        },
    )


@pytest.mark.parametrize(
    "given, stored",
    [
        ("present", "present"),
        ("absent", "absent"),
        ("must_exist", "present"),
        ("must_not_exist", "absent"),
    ],
)
def test_presence_words_are_normalised(api, rules, given, stored):
    check = {"namePattern": "^x$", "presence": given}
    rule = new_rule(
        api, rules, pathPattern="^/a", pathPresence=given, headerChecks=[check], queryChecks=[check]
    )
    assert rule["pathPresence"] == stored
    assert rule["headerChecks"][0]["presence"] == rule["queryChecks"][0]["presence"] == stored
    nested = new_rule(api, rules, path={"pattern": "^/a", "presence": given})
    assert nested["pathPresence"] == stored


def test_blog_query_checks_are_stored_flat(api, rules):
    query = [{"name": {"pattern": "^page$"}, "value": "^[0-9]+$", "presence": "must_not_exist"}]
    rule = new_rule(api, rules, query=query)
    assert rule["queryChecks"] == [
        {"namePattern": "^page$", "valuePattern": "^[0-9]+$", "presence": "absent"}
    ]


def test_lower_case_methods_are_upper_cased(api, rules):
    rule = new_rule(api, rules, methods=["get", "Post", "delete"])
    assert sorted(rule["methods"]) == ["DELETE", "GET", "POST"]
    updated = api.put(f"{rules}/{rule['ruleId']}", json={"methods": ["patch", "options"]})
    assert sorted(updated.json()["rules"][0]["methods"]) == ["OPTIONS", "PATCH"]


@pytest.mark.parametrize("flags", ["i", "im", "gi", "s", "u", ""])
def test_supported_regex_flags_are_accepted(api, rules, flags):
    rule = new_rule(api, rules, pathPattern="^/Users/", regexFlags=flags)
    assert sorted(rule["regexFlags"]) == sorted(flags)


# Validation ----------------------------------------------------------------------------------

GOOD_CHECK = {"namePattern": "^X-A$", "valuePattern": "^b$"}

BAD_BODIES = {
    "effect-missing": ({"priority": 1}, "effect"),
    "effect-unknown": ({"effect": "block"}, "effect"),
    "effect-null": ({"effect": None}, "effect"),
    "priority-negative": ({"effect": "allow", "priority": -1}, "priority"),
    "priority-too-big": ({"effect": "allow", "priority": 1001}, "priority"),
    "priority-float": ({"effect": "allow", "priority": 1.5}, "priority"),
    "priority-string": ({"effect": "allow", "priority": "5"}, "priority"),
    "priority-bool": ({"effect": "allow", "priority": True}, "priority"),
    "method-unknown": ({"effect": "allow", "methods": ["GET", "FETCH"]}, "methods"),
    "methods-not-list": ({"effect": "allow", "methods": "GET"}, "methods"),
    "path-presence-unknown": ({"effect": "allow", "pathPresence": "maybe"}, "pathPresence"),
    "path-pattern-empty": ({"effect": "allow", "pathPattern": ""}, "pathPattern"),
    "path-pattern-too-long": ({"effect": "allow", "pathPattern": "a" * 1001}, "pathPattern"),
    "path-and-pathPattern": (
        {"effect": "allow", "path": {"pattern": "^/a"}, "pathPattern": "^/b"},
        "path",
    ),
    "path-and-pathPresence": (
        {"effect": "allow", "path": {"pattern": "^/a"}, "pathPresence": "absent"},
        "path",
    ),
    "path-not-object": ({"effect": "allow", "path": "^/a"}, "path"),
    "path-unknown-key": ({"effect": "allow", "path": {"pattern": "^/a", "regex": "x"}}, "path"),
    "headers-and-headerChecks": (
        {"effect": "allow", "headers": [GOOD_CHECK], "headerChecks": [GOOD_CHECK]},
        "headers",
    ),
    "check-missing-name": (
        {"effect": "allow", "headerChecks": [{"valuePattern": "x"}]},
        "headerChecks.0.namePattern",
    ),
    "check-empty-name": (
        {"effect": "allow", "queryChecks": [{"namePattern": ""}]},
        "queryChecks.0.namePattern",
    ),
    "check-unknown-presence": (
        {"effect": "allow", "queryChecks": [GOOD_CHECK, {"namePattern": "a", "presence": "x"}]},
        "queryChecks.1.presence",
    ),
    "check-unknown-field": (
        {"effect": "allow", "headerChecks": [{**GOOD_CHECK, "flags": "i"}]},
        "headerChecks.0.flags",
    ),
    "check-not-object": ({"effect": "allow", "headerChecks": ["X-A"]}, "headerChecks.0"),
    "checks-null": ({"effect": "allow", "headerChecks": None}, "headerChecks"),
    "notes-too-long": ({"effect": "allow", "notes": "n" * 2001}, "notes"),
    "unknown-field": ({"effect": "allow", "conditions": []}, "conditions"),
    "body-rules-unsupported": (
        {"effect": "allow", "body": [{"jsonPath": {"pattern": ".*"}}]},
        "body",
    ),
    "flags-x": ({"effect": "allow", "regexFlags": "x"}, "regexFlags"),
    "flags-z-with-valid": ({"effect": "allow", "regexFlags": "iz"}, "regexFlags"),
    "flags-too-long": ({"effect": "allow", "regexFlags": "i" * 9}, "regexFlags"),
}


@pytest.mark.parametrize("body, field", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_rule_bodies_are_refused_naming_the_field(api, rules, body, field):
    assert_invalid(api.post(rules, json=body), field)
    assert api.get(rules).json()["rules"] == []


BAD_PATTERNS = {
    "unclosed-bracket": "[a-",
    "unclosed-group": "(abc",
    "dangling-repeat": "*abc",
    "backreference": r"(a)\1",
    "lookbehind": "(?<=x)a",
    "lookahead": "a(?=x)",
    "negative-lookahead": "a(?!x)",
    "possessive": "a*+",
    "huge-repeat": "a{1001}",
}
PATTERN_FIELDS = {
    "pathPattern": lambda p: {"pathPattern": p},
    "path.pattern": lambda p: {"path": {"pattern": p}},
    "headerChecks.0.namePattern": lambda p: {"headerChecks": [{"namePattern": p}]},
    "headerChecks.1.valuePattern": lambda p: {
        "headerChecks": [GOOD_CHECK, {"namePattern": "^ok$", "valuePattern": p}]
    },
    "queryChecks.0.namePattern": lambda p: {"queryChecks": [{"namePattern": p}]},
    "queryChecks.1.valuePattern": lambda p: {
        "queryChecks": [GOOD_CHECK, {"namePattern": "^ok$", "valuePattern": p}]
    },
}
# Where the error is reported for each way of sending the pattern.
REPORTED_AS = {"path.pattern": "pathPattern"}


@pytest.mark.parametrize("pattern", BAD_PATTERNS.values(), ids=BAD_PATTERNS.keys())
@pytest.mark.parametrize("where", PATTERN_FIELDS)
def test_invalid_regex_is_refused_naming_the_exact_field(api, rules, where, pattern):
    body = {"effect": "allow", **PATTERN_FIELDS[where](pattern)}
    response = api.post(rules, json=body)
    assert_invalid(response, REPORTED_AS.get(where, where))
    assert set(error_fields(response)) == {REPORTED_AS.get(where, where)}
    assert api.get(rules).json()["rules"] == []


def test_every_invalid_pattern_is_named_at_once(api, rules):
    body = {
        "effect": "deny",
        "pathPattern": "(",
        "headers": [{"name": {"pattern": "^ok$"}, "value": {"pattern": r"(a)\1"}}],
        "queryChecks": [GOOD_CHECK, {"namePattern": "(?<=x)"}],
    }
    response = api.post(rules, json=body)
    assert_invalid(response)
    assert set(error_fields(response)) == {
        "pathPattern",
        "headerChecks.0.valuePattern",
        "queryChecks.1.namePattern",
    }


def test_valid_re2_patterns_are_accepted(api, rules):
    rule = new_rule(
        api,
        rules,
        pathPattern=r"^/v(?P<version>[0-9]+)/\p{Greek}*",
        headerChecks=[{"namePattern": "(?i)^authorization$", "valuePattern": "^Bearer .{10,}$"}],
    )
    assert rule["pathPattern"] == r"^/v(?P<version>[0-9]+)/\p{Greek}*"


@pytest.mark.parametrize(
    "data",
    ["", "not json", "[]", '"effect"', '{"effect": "allow"'],
    ids=["empty", "text", "array", "string", "truncated"],
)
def test_non_json_body_is_invalid_json(api, rules, data):
    response = api.post(rules, data=data, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "INVALID_JSON")


# Updates -------------------------------------------------------------------------------------

BAD_UPDATES = {
    "path-pattern": ({"pathPattern": "(a)\\1"}, "pathPattern"),
    "nested-path": ({"path": {"pattern": "(?<=x)"}}, "pathPattern"),
    "header-value": (
        {"headerChecks": [{"namePattern": "^X$", "valuePattern": "["}]},
        "headerChecks.0.valuePattern",
    ),
    "query-name": ({"queryChecks": [GOOD_CHECK, {"namePattern": "a**"}]}, "queryChecks.1"),
    "flags": ({"regexFlags": "x"}, "regexFlags"),
    "effect": ({"effect": "block"}, "effect"),
    "priority": ({"priority": 1001}, "priority"),
    "method": ({"methods": ["get", "brew"]}, "methods"),
    "unknown-field": ({"enabled": False}, "enabled"),
    "check-missing-name": ({"headerChecks": [{"valuePattern": "x"}]}, "headerChecks.0"),
    "path-and-pathPattern": ({"path": {"pattern": "^/a"}, "pathPattern": "^/b"}, "path"),
}


@pytest.mark.parametrize("body, field", BAD_UPDATES.values(), ids=BAD_UPDATES.keys())
def test_bad_update_is_refused_and_leaves_the_rule_unchanged(api, rules, body, field):
    rule = new_rule(
        api,
        rules,
        priority=5,
        methods=["GET"],
        pathPattern="^/v1/",
        headerChecks=[{"namePattern": "^X-A$", "valuePattern": "^b$", "presence": "present"}],
        regexFlags="i",
    )
    item = f"{rules}/{rule['ruleId']}"
    assert_invalid(api.put(item, json=body), field)
    assert api.get(item).json()["rules"] == [rule]


def test_update_is_partial_and_accepts_every_form(api, rules):
    rule = new_rule(
        api,
        rules,
        priority=5,
        methods=["GET"],
        pathPattern="^/v1/",
        queryChecks=[{"namePattern": "^q$"}],
        notes="keep",
    )
    item = f"{rules}/{rule['ruleId']}"

    one = api.put(item, json={"priority": 1000}).json()["rules"][0]
    assert_has(one, {**{k: rule[k] for k in ("methods", "pathPattern", "notes")}, "priority": 1000})

    two = api.put(item, json={"path": {"presence": "must_not_exist"}}).json()["rules"][0]
    assert_has(two, {"pathPattern": "^/v1/", "pathPresence": "absent", "priority": 1000})

    headers = [{"name": {"pattern": "^X-B$"}, "presence": "must_exist"}]
    three = api.put(item, json={"headers": headers}).json()["rules"][0]
    assert three["headerChecks"] == [
        {"namePattern": "^X-B$", "valuePattern": None, "presence": "present"}
    ]
    assert three["queryChecks"] == rule["queryChecks"]

    four = api.put(item, json={"pathPattern": None, "notes": None, "regexFlags": "mi"})
    assert four.status_code == 200, four.text
    assert_has(four.json()["rules"][0], {"pathPattern": None, "notes": None})
    assert sorted(four.json()["rules"][0]["regexFlags"]) == ["i", "m"]
    assert api.get(item).json()["rules"] == four.json()["rules"]


def test_update_flags_are_checked_against_existing_patterns(api, rules):
    rule = new_rule(api, rules, pathPattern="^/Users/")
    item = f"{rules}/{rule['ruleId']}"
    assert_invalid(api.put(item, json={"regexFlags": "z"}), "regexFlags")
    updated = api.put(item, json={"regexFlags": "i"})
    assert updated.status_code == 200, updated.text
    assert_has(updated.json()["rules"][0], {"pathPattern": "^/Users/", "regexFlags": "i"})


def test_update_with_non_json_body_is_invalid_json(api, rules):
    rule = new_rule(api, rules, notes="keep")
    item = f"{rules}/{rule['ruleId']}"
    assert_error(api.put(item, data="notes=x"), 400, "INVALID_JSON")
    assert api.get(item).json()["rules"] == [rule]


def test_conflicting_nested_path_patterns_are_refused(api, rules):
    body = {"effect": "deny", "path": {"pattern": "^/a", "path": {"pattern": "^/b"}}}
    assert_invalid(api.post(rules, json=body), "path")
    assert api.get(rules).json()["rules"] == []


def test_nested_form_update_can_clear_the_path_pattern(api, rules):
    rule = new_rule(api, rules, pathPattern="^/v1/")
    response = api.put(f"{rules}/{rule['ruleId']}", json={"path": {"pattern": None}})
    assert response.status_code == 200, response.text
    assert response.json()["rules"][0]["pathPattern"] is None


# Tenancy, parents and roles ------------------------------------------------------------------


def test_rule_id_under_another_parent_is_not_found(api, client_id, proxy):
    ids = parent_ids(proxy)
    rule = new_rule(api, rules_path(client_id, "proxy", ids["proxy"]), notes="proxy rule")
    other_proxy = new_proxy(api, client_id)
    elsewhere = [rules_path(client_id, "proxy", other_proxy["sKey"])] + [
        rules_path(client_id, scope, ids[scope]) for scope in SCOPES if scope != "proxy"
    ]
    for path in elsewhere:
        item = f"{path}/{rule['ruleId']}"
        assert_error(api.get(item), 404, "NOT_FOUND")
        assert_error(api.put(item, json={"notes": "hijacked"}), 404, "NOT_FOUND")
        assert_error(api.delete(item), 404, "NOT_FOUND")
    item = f"{rules_path(client_id, 'proxy', ids['proxy'])}/{rule['ruleId']}"
    assert api.get(item).json()["rules"] == [rule]


def test_parent_of_another_kind_or_client_is_not_found(api, client_id, proxy):
    ids = parent_ids(proxy)
    # The target's id used as a credential or a proxy, a credential's id used as a target.
    for scope, parent_id in [
        ("proxyCredential", ids["target"]),
        ("proxy", ids["target"]),
        ("target", ids["proxyCredential"]),
        ("proxy", "no-such-proxy"),
    ]:
        path = rules_path(client_id, scope, parent_id)
        assert_error(api.get(path), 404, "NOT_FOUND")
        assert_error(api.post(path, json={"effect": "allow"}), 404, "NOT_FOUND")
    # The same parents addressed through another client of the same owner.
    other_client = create(api, "/api/clients", {"clientName": "Other"}, "clients")["clientId"]
    for scope in SCOPES:
        path = rules_path(other_client, scope, ids[scope])
        assert_error(api.get(path), 404, "NOT_FOUND")
        assert_error(api.post(path, json={"effect": "allow"}), 404, "NOT_FOUND")


@pytest.mark.parametrize("scope", SCOPES)
def test_stranger_sees_nothing(api, stranger, client_id, proxy, scope):
    path = rules_path(client_id, scope, parent_ids(proxy)[scope])
    rule = new_rule(api, path)
    item = f"{path}/{rule['ruleId']}"
    as_stranger = api.as_user(stranger)
    assert_error(as_stranger.get(path), 404, "NOT_FOUND")
    assert_error(as_stranger.post(path, json={"effect": "deny"}), 404, "NOT_FOUND")
    assert_error(as_stranger.get(item), 404, "NOT_FOUND")
    assert_error(as_stranger.put(item, json={"effect": "deny"}), 404, "NOT_FOUND")
    assert_error(as_stranger.delete(item), 404, "NOT_FOUND")
    assert api.get(path).json()["rules"] == [rule]


def test_unauthenticated_requests_are_refused(api, client_id, proxy):
    path = rules_path(client_id, "proxy", proxy["sKey"])
    anonymous = api.as_user(None)
    assert_error(anonymous.get(path), 401, "UNAUTHORIZED")
    assert_error(anonymous.post(path, json={"effect": "allow"}), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("scope", SCOPES)
def test_user_role_can_read_but_not_write(api, make_user, client_id, proxy, scope):
    member = make_user()
    added = api.post(
        f"/api/clients/{client_id}/members", json={"email": member.email, "roles": ["user"]}
    )
    assert added.status_code in (200, 201), added.text
    path = rules_path(client_id, scope, parent_ids(proxy)[scope])
    rule = new_rule(api, path, priority=3)
    item = f"{path}/{rule['ruleId']}"
    as_member = api.as_user(member)

    assert as_member.get(path).json()["rules"] == [rule]
    assert as_member.get(item).json()["rules"] == [rule]
    assert_error(as_member.post(path, json={"effect": "deny"}), 403, "FORBIDDEN")
    assert_error(as_member.put(item, json={"effect": "deny"}), 403, "FORBIDDEN")
    assert_error(as_member.delete(item), 403, "FORBIDDEN")
    assert api.get(path).json()["rules"] == [rule]


# Cascades ------------------------------------------------------------------------------------


def test_deleting_a_proxy_removes_its_rules(api, client_id):
    proxy = new_proxy(api, client_id, proxyAlias="gate")
    path = rules_path(client_id, "proxy", proxy["sKey"])
    by_alias = rules_path(client_id, "proxy", "gate")
    rule = new_rule(api, by_alias, effect="deny", priority=10)
    target_path = rules_path(client_id, "target", proxy["proxyTargetId"])
    target_rule = new_rule(api, target_path)

    deleted = api.delete(f"/api/clients/{client_id}/proxies/{proxy['sKey']}")
    assert deleted.status_code == 200, deleted.text
    for url in (path, by_alias):
        assert_error(api.get(url), 404, "NOT_FOUND")
        assert_error(api.get(f"{url}/{rule['ruleId']}"), 404, "NOT_FOUND")
        assert_error(api.post(url, json={"effect": "allow"}), 404, "NOT_FOUND")

    # A new proxy, even under the same alias, starts with no rules.
    fresh = new_proxy(api, client_id, proxyAlias="gate")
    assert fresh["sKey"] != proxy["sKey"]
    for url in (rules_path(client_id, "proxy", fresh["sKey"]), by_alias):
        assert api.get(url).json()["rules"] == []
        assert_error(api.get(f"{url}/{rule['ruleId']}"), 404, "NOT_FOUND")
    # Rules of the parts the proxy used are untouched.
    assert api.get(target_path).json()["rules"] == [target_rule]


@pytest.mark.parametrize("kind", ["credentials", "targets"])
def test_deleting_a_credential_or_target_removes_its_rules(api, client_id, kind):
    base = f"/api/clients/{client_id}/{kind}"
    if kind == "targets":
        parent = create(api, base, target_body(), "targets")
    else:
        parent = create(api, base, credential_body(), "credentials")
    path = f"{base}/{parent['sKey']}/rules"
    rule = new_rule(api, path)
    assert api.delete(f"{base}/{parent['sKey']}").status_code == 200
    assert_error(api.get(path), 404, "NOT_FOUND")
    assert_error(api.get(f"{path}/{rule['ruleId']}"), 404, "NOT_FOUND")
