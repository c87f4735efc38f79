"""Rules that read the request body and MCP calls (issue 18): the engine, the Rules API and
the explainer.

Engine tests run without processes; the API tests share the session's real admin.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from admin.api.rules import RULE_DEFAULTS
from models.body_checks import NOT_JSON
from models.mcp import McpCall, parse_calls
from models.request_body import facts as body_facts
from models.rule_engine import BodyFacts, RequestFacts, authorize, build_scope, compile_rule
from tests.support import (
    Api,
    assert_error,
    assert_has,
    assert_invalid,
    create,
    new_client,
    new_proxy,
)
from tests.test_web_admin import choose
from tests.web_support import signed_in_page

_ids = iter(range(1, 10_000))


def rule(effect: str = "deny", **fields) -> SimpleNamespace:
    """A stored rule's attributes, as the store hands them over."""
    values = {
        "id": f"rule_{next(_ids):04d}",
        "effect": effect,
        **RULE_DEFAULTS,  # what the Rules API stores for fields left out
    }
    return SimpleNamespace(**{**values, **fields})


def with_body(raw: bytes | None, path: str = "/v1/chat", mcp: McpCall | None = None):
    body = None if raw is None else body_facts(raw)
    return RequestFacts("POST", path, [], [], body=body, mcp=mcp)


def check(path: str, presence: str = "present", **test) -> dict:
    return {"path": path, "presence": presence, **test}


GPT = b'{"model": "gpt-4o-mini", "n": 1, "stream": true, "tags": ["a", "b"], "x": null}'

# (rule fields, body, matches): every body field, both presences, every kind of test.
ENGINE_CASES = [
    # valuePattern: some selected *string* matches
    ({"body_checks": [check("model", valuePattern="^gpt-4o")]}, GPT, True),
    ({"body_checks": [check("model", valuePattern="^gpt-4o")]}, b'{"model": "small"}', False),
    ({"body_checks": [check("model", "absent", valuePattern="^gpt-4o")]}, b'{"model": "s"}', True),
    ({"body_checks": [check("model", "absent", valuePattern="^gpt-4o")]}, GPT, False),
    ({"body_checks": [check("n", valuePattern="1")]}, GPT, False),  # numbers are not text
    ({"body_checks": [check("tags.*", valuePattern="^b$")]}, GPT, True),
    ({"body_checks": [check("tags.1", valuePattern="^a$")]}, GPT, False),
    ({"body_checks": [check("model", valuePattern="^GPT")], "regex_flags": "i"}, GPT, True),
    ({"body_checks": [check("model", valuePattern="^GPT")]}, GPT, False),
    # equals: JSON equality (1 is 1.0, true is not 1, null is a value)
    ({"body_checks": [check("n", equals=1.0)]}, GPT, True),
    ({"body_checks": [check("stream", equals=1)]}, GPT, False),
    ({"body_checks": [check("stream", equals=True)]}, GPT, True),
    ({"body_checks": [check("x", equals=None)]}, GPT, True),
    ({"body_checks": [check("missing", equals=None)]}, GPT, False),
    ({"body_checks": [check("params.name", equals="delete_repo")]},
     b'{"params": {"name": "delete_repo"}}', True),
    ({"body_checks": [check("params.name", equals="delete_repo")]},
     b'{"params": {"name": "delete_repo_2"}}', False),
    # neither: the path selects something (a null value is something)
    ({"body_checks": [check("x")]}, GPT, True),
    ({"body_checks": [check("tools")]}, GPT, False),
    ({"body_checks": [check("tools", "absent")]}, GPT, True),
    ({"body_checks": [check("x", "absent")]}, GPT, False),
    # every check must hold
    ({"body_checks": [check("model", valuePattern="gpt"), check("n", equals=2)]}, GPT, False),
    # no body, an empty body, a body that is not JSON: nothing is selected
    ({"body_checks": [check("model")]}, None, False),
    ({"body_checks": [check("model", "absent")]}, None, True),
    ({"body_checks": [check("model", "absent")]}, b"", True),
    ({"body_checks": [check("model")]}, b"model=gpt-4o", False),
    ({"body_checks": [check("model", "absent")]}, b"model=gpt-4o", True),
    # bodyPattern: RE2 over the raw text, with the rule's flags
    ({"body_pattern": "model=gpt-4o"}, b"model=gpt-4o&n=1", True),
    ({"body_pattern": "MODEL=", "regex_flags": "i"}, b"model=gpt-4o", True),
    ({"body_pattern": "MODEL="}, b"model=gpt-4o", False),
    ({"body_pattern": "secret", "body_pattern_presence": "absent"}, b"hello", True),
    ({"body_pattern": "secret", "body_pattern_presence": "absent"}, b"a secret", False),
    ({"body_pattern": "^$"}, None, True),  # no body reads as ""
    ({"body_pattern": "."}, None, False),
    ({"body_pattern": '"model": "gpt'}, GPT, True),  # JSON bodies are text too
    # bytes that are not UTF-8: U+FFFD, the rest still matches; such JSON is not JSON
    ({"body_pattern": "^\ufffd\ufffdtoken=abc$"}, b"\xff\xfetoken=abc", True),
    ({"body_pattern": "token=abc"}, b"\xc3(token=abc", True),
    ({"body_checks": [check("model", valuePattern="gpt")]}, b'{"model": "gpt\xff"}', False),
    ({"body_pattern": 'gpt\ufffd"'}, b'{"model": "gpt\xff"}', True),
    # body checks and the raw pattern together
    ({"body_checks": [check("model")], "body_pattern": "stream"}, GPT, True),
    ({"body_checks": [check("model")], "body_pattern": "nope"}, GPT, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "raw", "expected"),
    ENGINE_CASES,
    ids=[f"case{i:02d}" for i in range(len(ENGINE_CASES))],
)
def test_body_checks_and_the_raw_pattern_match_as_documented(fields, raw, expected):
    compiled = compile_rule(rule(**fields))
    assert compiled.reads_body
    assert compiled.matches(with_body(raw)) is expected


SEARCH = McpCall("tools/call", "search", 1, {"method": "tools/call", "params": {"name": "search"}})
DELETE = McpCall("tools/call", "delete_repo", 2, {"method": "tools/call"})
NAMELESS = McpCall("tools/call", None, 3, {"method": "tools/call", "params": {}})
LISTING = McpCall("tools/list", None, 4, {"method": "tools/list"})

MCP_CASES = [
    ({"mcp_methods": ["tools/call"]}, SEARCH, True),
    ({"mcp_methods": ["tools/call"]}, LISTING, False),
    ({"mcp_methods": ["tools/CALL"]}, SEARCH, False),  # exact
    ({"mcp_methods": ["tools/list", "initialize"]}, LISTING, True),
    ({"mcp_tools": ["search", "read_file"]}, SEARCH, True),
    ({"mcp_tools": ["search", "read_file"]}, DELETE, False),
    ({"mcp_tools": ["Search"]}, SEARCH, False),  # exact
    ({"mcp_tools": ["search"], "mcp_tools_presence": "absent"}, DELETE, True),
    ({"mcp_tools": ["search"], "mcp_tools_presence": "absent"}, SEARCH, False),
    # a call without a tool has none of them
    ({"mcp_tools": ["search"]}, NAMELESS, False),
    ({"mcp_tools": ["search"], "mcp_tools_presence": "absent"}, NAMELESS, True),
    ({"mcp_tools": ["search"], "mcp_tools_presence": "absent"}, LISTING, True),
    # "only search and read_file": tools/call of anything else
    ({"mcp_methods": ["tools/call"], "mcp_tools": ["search", "read_file"],
      "mcp_tools_presence": "absent"}, DELETE, True),
    ({"mcp_methods": ["tools/call"], "mcp_tools": ["search", "read_file"],
      "mcp_tools_presence": "absent"}, LISTING, False),
    ({"mcp_methods": ["tools/call"], "mcp_tools": ["search", "read_file"],
      "mcp_tools_presence": "absent"}, SEARCH, False),
    # MCP fields never match a request that is no call, whatever the presence
    ({"mcp_methods": ["tools/call"]}, None, False),
    ({"mcp_tools": ["search"], "mcp_tools_presence": "absent"}, None, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "call", "expected"), MCP_CASES, ids=[f"case{i:02d}" for i in range(len(MCP_CASES))]
)
def test_mcp_methods_and_tools_match_the_call_being_decided(fields, call, expected):
    compiled = compile_rule(rule(**fields))
    assert compiled.reads_body
    assert compiled.matches(with_body(b"{}", mcp=call)) is expected


def test_rules_without_body_fields_read_nothing_and_keep_matching():
    plain = compile_rule(rule(path_pattern="^/v1/"))
    assert not plain.reads_body
    for facts in (
        with_body(None),
        with_body(GPT),
        with_body(b"\xff"),
        with_body(b"{}", mcp=SEARCH),
    ):
        assert plain.matches(facts)
    # Meter predicates hand over only the header-era attributes: the defaults read nothing.
    legacy = SimpleNamespace(
        **{k: v for k, v in vars(rule()).items() if "body" not in k and "mcp" not in k}
    )
    assert not compile_rule(legacy).reads_body and compile_rule(legacy).matches(with_body(None))


def test_path_readings_keep_the_body_and_the_call():
    """A `;` path is decided on both readings; each reading still carries body and call."""
    deny = rule(path_pattern="^/v1/chat$", body_checks=[check("model", valuePattern="^gpt")])
    only = rule(mcp_tools=["search"], mcp_tools_presence="absent", path_pattern="^/mcp$")
    scope = build_scope("proxy", "allow", [deny, only])
    decision = scope.decide(with_body(GPT, path="/v1/chat;jsessionid=1"))
    assert (decision.allowed, decision.rule_id) == (False, deny.id)
    assert scope.decide(with_body(b'{"model": "small"}', path="/v1/chat;x=1")).allowed
    assert not scope.decide(with_body(b"{}", path="/mcp;x=1", mcp=DELETE)).allowed
    assert scope.decide(with_body(b"{}", path="/mcp;x=1", mcp=SEARCH)).allowed
    readings = with_body(GPT, path="/a;b=1/c", mcp=SEARCH).readings()
    assert [r.path for r in readings] == ["/a;b=1/c", "/a/c"]
    assert all(r.body == body_facts(GPT) and r.mcp == SEARCH for r in readings)


def test_each_call_of_a_batch_is_decided_on_its_own_element():
    """for_call: the call's message is the document; the raw pattern sees the whole body."""
    raw = json.dumps(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search"}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "delete_repo"}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
        ]
    ).encode()
    facts = with_body(raw, path="/mcp")
    calls, batch = parse_calls(facts.body.document)
    assert batch and [c.tool for c in calls] == ["search", "delete_repo", None]
    by_body = rule(body_checks=[check("params.name", equals="delete_repo")])
    by_pattern = rule(body_pattern="delete_repo")
    scopes = [build_scope("proxy", "allow", [by_body])]
    verdicts = [authorize(scopes, facts.for_call(call)).allowed for call in calls]
    assert verdicts == [True, False, True]
    assert all(compile_rule(by_pattern).matches(facts.for_call(call)) for call in calls)
    # The raw pattern's verdict is the same for every call: the body is scanned once per
    # pattern and the verdict shared (a 1 MiB batch holds thousands of calls).
    assert all(facts.for_call(call).body.found is facts.body.found for call in calls)
    assert facts.body.found == {compile_rule(by_pattern).body_pattern: True}
    assert not compile_rule(rule(body_pattern="read_file")).matches(facts.for_call(calls[0]))
    assert facts.for_call(calls[0]).body.document["params"]["name"] == "search"
    assert with_body(None).for_call(SEARCH).body == BodyFacts(SEARCH.document, "")
    assert with_body(b"x").body.document is NOT_JSON


# Core API ---------------------------------------------------------------------------------


@pytest.fixture
def rules(api, client_id) -> str:
    target = new_proxy(api, client_id)["proxyTargetId"]
    return f"/api/clients/{client_id}/targets/{target}/rules"


FULL = {
    "effect": "deny",
    "bodyChecks": [
        {"path": "model", "valuePattern": "^gpt-4o"},
        {"path": "params.name", "equals": "delete_repo", "presence": "must_not_exist"},
        {"path": "stream", "equals": None},
        {"path": "tools.*.name", "presence": "absent"},
        {"path": "n", "equals": 1.5, "valuePattern": None},
    ],
    "bodyPattern": "(?:secret|token)=",
    "bodyPatternPresence": "mustExist",
    "mcpMethods": ["tools/call", "tools/call"],
    "mcpTools": ["search", "read_file"],
    "mcpToolsPresence": "absent",
    "regexFlags": "i",
}


def test_body_and_mcp_fields_are_stored_canonical_and_round_trip(api, rules):
    stored = create(api, rules, FULL, "rules")
    assert_has(
        stored,
        {
            "bodyChecks": [
                {"path": "model", "valuePattern": "^gpt-4o", "presence": "present"},
                {"path": "params.name", "equals": "delete_repo", "presence": "absent"},
                {"path": "stream", "equals": None, "presence": "present"},
                {"path": "tools.*.name", "presence": "absent"},
                {"path": "n", "equals": 1.5, "presence": "present"},
            ],
            "bodyPattern": "(?:secret|token)=",
            "bodyPatternPresence": "present",
            "mcpMethods": ["tools/call"],
            "mcpTools": ["search", "read_file"],
            "mcpToolsPresence": "absent",
        },
    )
    url = f"{rules}/{stored['ruleId']}"
    again = api.put(url, json=stored)
    assert again.status_code == 200, again.text
    assert api.get(url).json()["rules"][0]["bodyChecks"] == stored["bodyChecks"]
    cleared = api.put(url, json={"bodyChecks": [], "bodyPattern": None, "mcpTools": []})
    assert cleared.status_code == 200, cleared.text
    assert_has(
        cleared.json()["rules"][0],
        {"bodyChecks": [], "bodyPattern": None, "mcpTools": [], "mcpMethods": ["tools/call"]},
    )
    document = api.get("/api/openapi.json").json()
    for name in ("bodyChecks", "bodyPatternPresence", "mcpToolsPresence", "mcpCalls"):
        assert name in json.dumps(document)


BAD = [
    ({"bodyChecks": [{"path": "a..b"}]}, "bodyChecks.0.path"),
    ({"bodyChecks": [{"path": ""}]}, "bodyChecks.0.path"),
    ({"bodyChecks": [{"valuePattern": "x"}]}, "bodyChecks.0.path"),
    ({"bodyChecks": [{"path": "a", "valuePattern": "(a"}]}, "bodyChecks.0.valuePattern"),
    ({"bodyChecks": [{"path": "a"}, {"path": "b", "valuePattern": "(?=x)"}]},
     "bodyChecks.1.valuePattern"),
    ({"bodyChecks": [{"path": "a", "valuePattern": ""}]}, "bodyChecks.0.valuePattern"),
    ({"bodyChecks": [{"path": "a", "valuePattern": "x", "equals": "x"}]}, "bodyChecks.0.equals"),
    ({"bodyChecks": [{"path": "a", "equals": {"b": 1}}]}, "bodyChecks.0.equals"),
    ({"bodyChecks": [{"path": "a", "equals": [1]}]}, "bodyChecks.0.equals"),
    ({"bodyChecks": [{"path": "a", "equals": "x" * 1001}]}, "bodyChecks.0.equals"),
    ({"bodyChecks": [{"path": "a", "presence": "maybe"}]}, "bodyChecks.0.presence"),
    ({"bodyChecks": [{"path": "a", "colour": "red"}]}, "bodyChecks.0.colour"),
    ({"bodyChecks": [{"path": "a"}] * 51}, "bodyChecks"),
    ({"bodyChecks": {"path": "a"}}, "bodyChecks"),
    ({"bodyChecks": ["model"]}, "bodyChecks.0"),
    ({"bodyPattern": "(unclosed"}, "bodyPattern"),
    ({"bodyPattern": "a\\1"}, "bodyPattern"),
    ({"bodyPattern": ""}, "bodyPattern"),
    ({"bodyPattern": "x" * 1001}, "bodyPattern"),
    ({"bodyPattern": 7}, "bodyPattern"),
    ({"bodyPatternPresence": "sometimes"}, "bodyPatternPresence"),
    ({"mcpMethods": "tools/call"}, "mcpMethods"),
    ({"mcpMethods": [""]}, "mcpMethods.0"),
    ({"mcpMethods": ["tools/call", 5]}, "mcpMethods.1"),
    ({"mcpTools": ["search", "x" * 129]}, "mcpTools.1"),
    ({"mcpTools": ["search", "bad\nname"]}, "mcpTools.1"),
    ({"mcpTools": [f"t{i}" for i in range(51)]}, "mcpTools"),
    ({"mcpToolsPresence": "none"}, "mcpToolsPresence"),
]  # fmt: skip


def test_bad_body_and_mcp_fields_are_refused_naming_the_field(api, rules):
    """Create and update alike: a 400 naming the field, and nothing stored or changed."""
    stored = create(api, rules, {"effect": "deny", "bodyPattern": "keep"}, "rules")
    url = f"{rules}/{stored['ruleId']}"
    for body, field in BAD:
        assert_invalid(api.post(rules, json={"effect": "deny", **body}), field)
        assert_invalid(api.put(url, json=body), field)
    assert [r["ruleId"] for r in api.get(rules).json()["rules"]] == [stored["ruleId"]]
    assert api.get(url).json()["rules"][0] == stored
    # the rule's flags are checked against its stored body patterns too
    flagged = create(api, rules, {"effect": "deny", "bodyChecks": [{"path": "a"}]}, "rules")
    assert_invalid(api.put(f"{rules}/{flagged['ruleId']}", json={"regexFlags": "x"}), "regexFlags")


# Explainer ----------------------------------------------------------------------------------


def test_the_explainer_decides_bodies_and_each_mcp_call_as_the_data_plane(api, client_id):
    proxy = new_proxy(api, client_id, proxyMcp=True)
    scope = f"/api/clients/{client_id}/credentials/{proxy['proxyProxyCredentialId']}/rules"
    model = create(
        api,
        scope,
        {"effect": "deny", "bodyChecks": [{"path": "model", "valuePattern": "^gpt-4o"}]},
        "rules",
    )
    only = create(
        api,
        scope,
        {
            "effect": "deny",
            "mcpMethods": ["tools/call"],
            "mcpTools": ["search", "read_file"],
            "mcpToolsPresence": "absent",
        },
        "rules",
    )
    explain = f"/api/clients/{client_id}/proxies/{proxy['proxyId']}/explain"

    def ask(body, method="POST"):
        answer = api.post(explain, json={"method": method, "path": "/mcp", **body})
        assert answer.status_code == 200, answer.text
        return answer.json()["explanations"][0]

    denied = ask({"body": '{"model": "gpt-4o"}'})
    assert (denied["allowed"], denied["ruleId"], denied["mcpCalls"]) == (False, model["ruleId"], [])
    assert ask({"body": '{"model": "small"}'})["allowed"]
    assert ask({})["allowed"]  # no body: nothing for the body checks to select

    def call(id_, tool):
        params = {"name": tool} if tool else {}
        return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params}

    batch = ask({"body": json.dumps([call(1, "search"), call(2, "delete_repo"), call(3, None)])})
    assert batch["allowed"] is False and batch["ruleId"] == only["ruleId"]
    assert [(c["id"], c["tool"], c["allowed"], c["ruleId"]) for c in batch["mcpCalls"]] == [
        (1, "search", True, None),
        (2, "delete_repo", False, only["ruleId"]),
        (3, None, False, only["ruleId"]),
    ]
    scopes = {s["scope"]: s for s in batch["scopes"]}
    assert scopes["proxyCredential"]["matchedRules"][0]["ruleId"] == only["ruleId"]
    single = ask({"body": json.dumps(call(9, "read_file"))})
    assert single["allowed"] and [c["tool"] for c in single["mcpCalls"]] == ["read_file"]
    listing = ask({"body": json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})})
    assert listing["allowed"] and listing["mcpCalls"][0]["method"] == "tools/list"
    # Not a call: a GET, a JSON-RPC response, a body that is not JSON (decided as a request).
    assert ask({"body": json.dumps(call(1, "delete_repo"))}, method="GET")["mcpCalls"] == []
    assert ask({"body": '{"jsonrpc": "2.0", "id": 1, "result": {}}'})["mcpCalls"] == []
    assert ask({"body": "delete_repo"})["allowed"]
    # A body that looks like JSON but is not strict JSON is refused before any rule, as the
    # gateway refuses it (a lenient target could read another document than the rules).
    for sneaky in (
        '{"model": "gpt-4o", "model": "small"}',
        json.dumps(call(1, "delete_repo"))[:-1] + ', "params": {"name": "search"}}',
        '{"model": "gpt-4o", "n": 1e400}',
        '{"model": "gpt-4o", "x": "\\ud800"}',
        '{"model": "gpt-4o", "n": NaN}',
        "[" * 100 + "]" * 100,
        ' \n{"model": "gpt-4o",}',
    ):
        refused = ask({"body": sneaky})
        assert refused["allowed"] is False and refused["mcpCalls"] == [], sneaky
        assert (refused["bodyRefusal"]["status"], refused["bodyRefusal"]["code"]) == (
            400,
            "BODY_NOT_INSPECTABLE",
        ), sneaky
    assert ask({"body": '{"model": "small"}'})["bodyRefusal"] is None

    # Not an MCP proxy and no body rules: its POSTs carry no calls and the body decides
    # nothing, but its meters still read the body for their own checks.
    plain = new_proxy(api, client_id)
    meter = create(
        api,
        f"/api/clients/{client_id}/proxies/{plain['proxyId']}/meters",
        {
            "meterName": "Big model",
            "meterType": "request_count",
            "meterMode": "conditional",
            "predicates": {"bodyChecks": [{"path": "model", "equals": "big"}]},
        },
        "meters",
    )
    plain_explain = f"/api/clients/{client_id}/proxies/{plain['proxyId']}/explain"
    for body, counts in (
        ({"body": json.dumps({**call(1, "delete_repo"), "model": "big"})}, True),
        ({"body": '{"model": "small"}'}, False),
        ({"body": '{"model": "big", "model": "small"}'}, False),  # this proxy reads no body
    ):
        answer = api.post(plain_explain, json={"method": "POST", "path": "/", **body})
        explained = answer.json()["explanations"][0]
        assert (explained["allowed"], explained["mcpCalls"], explained["bodyRefusal"]) == (
            True,
            [],
            None,
        )
        assert [(m["meterId"], m["applies"], m["dependsOnBody"]) for m in explained["meters"]] == [
            (meter["meterId"], counts, False)
        ]
    no_body = api.post(plain_explain, json={"method": "POST", "path": "/"}).json()
    assert no_body["explanations"][0]["meters"][0]["dependsOnBody"] is True

    assert_invalid(api.post(explain, json={"method": "POST", "path": "/", "body": 5}), "body")
    # Over 1 MiB: the admin's own request-body limit (1 MiB by default) answers first.
    too_big = api.post(explain, json={"method": "POST", "path": "/", "body": "x" * 2**20})
    assert too_big.status_code == 413 and too_big.json()["error"]["code"]
    surrogate = b'{"method": "POST", "path": "/", "body": "\\ud800"}'
    response = api.post(explain, data=surrogate, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "INVALID_JSON")  # no text a request could carry


# Web admin (one Chromium story) -----------------------------------------------------------

LIMIT = "Max response bytes (empty = default, 0 = no limit)"
MCP = "MCP server (its JSON-RPC calls are decided one by one)"


def test_a_body_and_mcp_rule_made_in_the_form_denies_in_the_explainer(browser, admin_server, owner):
    """The rule form's body-check rows and MCP lists, the proxy form's response limit and MCP
    flag, and the explainer's body: what the API keeps is what the pages show."""
    api = Api(admin_server.base_url, owner.token)
    client_id = new_client(api, "Agents")
    proxy_id = new_proxy(api, client_id)["proxyId"]
    base = f"{admin_server.base_url}/ui/c/{client_id}/proxies/{proxy_id}"
    page = signed_in_page(browser, admin_server.base_url, owner.token)

    # The proxy: a bad limit is refused next to its field; 0 (no limit) and MCP are kept.
    page.goto(base)
    page.get_by_label(LIMIT).fill("lots")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".field.has-error")).to_contain_text("Max response bytes")
    page.get_by_label(LIMIT).fill("0")
    page.get_by_label(MCP).check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Proxy saved.")).to_be_visible()
    page.goto(base)
    expect(page.get_by_label(LIMIT)).to_have_value("0")
    expect(page.get_by_label(MCP)).to_be_checked()
    stored = api.get(f"/api/clients/{client_id}/proxies/{proxy_id}").json()["proxies"][0]
    assert (stored["proxyMaxResponseBytes"], stored["proxyMcp"]) == (0, True)

    # A deny rule: tools/call of any tool but search and read_file on a prod- repository.
    page.goto(f"{base}/rules/new")
    choose(page, "Effect", "deny")
    page.get_by_label("Body 1 json path").fill("params..repo")
    page.get_by_label("Body 1 value pattern (optional)").fill("^prod-")
    page.get_by_label("Body 2 json path").fill("params.arguments.force")
    page.get_by_label("Body 2 equals (optional)").fill("true")  # JSON: the boolean
    choose(page, "Body 2 must be", "must be absent")
    page.get_by_label("MCP methods, e.g. tools/call (comma-separated; empty: any)").fill(
        "tools/call"
    )
    page.get_by_label("MCP tools (comma- or line-separated; empty: any)").fill("search\nread_file")
    choose(page, "MCP tool", "the tool must be none of them")
    page.get_by_role("button", name="Add rule").click()
    row_error = page.locator("tr.check-row td.has-error")
    expect(row_error).to_have_count(1)  # the API's message, by the path it names
    expect(row_error.get_by_role("alert")).to_contain_text("empty segment")
    page.get_by_label("Body 1 json path").fill("params.arguments.repo")
    page.get_by_role("button", name="Add rule").click()
    added = page.get_by_text(re.compile(r"Rule rule_[0-9a-f]+ added"))
    expect(added).to_be_visible()
    rule_id = re.search(r"Rule (rule_[0-9a-f]+) added", added.inner_text()).group(1)
    listed = page.locator("tr", has=page.get_by_text(rule_id))
    expect(listed.locator("td.body-checks")).to_contain_text("params.arguments.repo ~ ^prod-")
    expect(listed.locator("td.mcp")).to_contain_text("tool none of search, read_file")
    rules_url = f"/api/clients/{client_id}/proxies/{proxy_id}/rules/{rule_id}"
    rule = api.get(rules_url).json()["rules"][0]
    assert rule["bodyChecks"][1] == {
        "path": "params.arguments.force",
        "equals": True,
        "presence": "absent",
    }
    assert (rule["mcpMethods"], rule["mcpTools"]) == (["tools/call"], ["search", "read_file"])
    # Its edit page shows what is stored, and saving it unchanged changes nothing.
    listed.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Body 1 json path")).to_have_value("params.arguments.repo")
    expect(page.get_by_label("Body 2 equals (optional)")).to_have_value("true")
    expect(page.get_by_label("MCP tools (comma- or line-separated; empty: any)")).to_have_value(
        "search\nread_file"
    )
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_text(f"Rule {rule_id} saved.")).to_be_visible()
    again = api.get(rules_url).json()["rules"][0]
    assert {k: v for k, v in again.items() if k != "ruleUpdatedAt"} == {
        k: v for k, v in rule.items() if k != "ruleUpdatedAt"
    }

    # The explainer with a body: each call decided as the gateway decides it.
    def explain(tool: str, repo: str) -> None:
        page.goto(f"{base}/explain")
        choose(page, "Method", "POST")
        page.get_by_label("Path below the proxy").fill("/mcp")
        call = {"name": tool, "arguments": {"repo": repo}}
        page.get_by_label(re.compile("^Body \\(optional")).fill(
            json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call})
        )
        page.get_by_role("button", name="Explain").click()

    explain("delete_repo", "prod-api")
    expect(page.locator("#decision")).to_have_text("denied")
    expect(page.locator("#explain-mcp-calls")).to_contain_text("delete_repo")
    expect(page.locator("#explain-mcp-calls")).to_contain_text(rule_id)
    explain("search", "prod-api")
    expect(page.locator("#decision")).to_have_text("allowed")
    explain("delete_repo", "test-api")
    expect(page.locator("#decision")).to_have_text("allowed")
    page.context.close()
