"""Meters Core API: CRUD with seed-style envelopes, the usage read-out, and bad input
answered 400 naming the field (never 500), on a real admin."""

from __future__ import annotations

import pytest

from tests.support import assert_invalid, create, new_proxy

TOKENS = {"meterName": "Tokens", "meterType": "response_value",
          "extraction": {"location": "body", "path": "usage.total_tokens"},
          "limits": {"day": 1000}}  # fmt: skip


@pytest.fixture
def meters(api, client_id) -> str:
    proxy = new_proxy(api, client_id)
    return f"/api/clients/{client_id}/proxies/{proxy['sKey']}/meters"


def test_create_get_list_update_delete(api, meters):
    meter = create(api, meters, TOKENS, "meters")
    assert meter["meterId"].startswith("meter")
    assert meter["meterActive"] is True and meter["meterMode"] == "all"
    assert meter["meterRegion"]  # from the proxy
    assert meter["limits"] == {"day": 1000}
    assert meter["limitMode"] == "reached"  # the default
    url = f"{meters}/{meter['meterId']}"
    assert api.get(url).json()["meters"][0]["meterId"] == meter["meterId"]
    assert [m["meterId"] for m in api.get(meters).json()["meters"]] == [meter["meterId"]]

    limits = {"minute": 5, "month": 20000}
    changed = api.put(url, json={"limits": limits, "meterActive": False, "limitMode": "estimate"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["meters"][0]["limitMode"] == "estimate"
    assert changed.json()["meters"][0]["limits"] == {"minute": 5, "month": 20000}
    assert changed.json()["meters"][0]["meterActive"] is False

    usage = api.get(f"{url}/usage").json()["usage"][0]
    windows = {w["window"]: w for w in usage["windows"]}
    assert windows["minute"]["limit"] == 5 and windows["minute"]["used"] == 0
    assert windows["hour"]["limit"] is None
    assert windows["day"]["resetsAt"] - windows["day"]["windowStart"] == 86400
    assert windows["day"]["resetsAt"] % 86400 == 0 and windows["minute"]["resetsAt"] % 60 == 0

    assert api.delete(url).status_code == 200
    assert api.get(url).status_code == 404
    assert api.get(meters).json()["meters"] == []


def test_conditional_meter_keeps_its_predicates(api, meters):
    body = {"meterName": "Big model", "meterType": "request_count", "meterMode": "conditional",
            "predicates": {"methods": ["POST"],
                           "bodyChecks": [{"path": "model", "equals": "big"}]}}  # fmt: skip
    meter = create(api, meters, body, "meters")
    assert meter["predicates"]["bodyChecks"] == [{"path": "model", "equals": "big"}]


def test_stream_extraction_and_mcp_predicates_are_kept(api, meters):
    body = {**TOKENS, "meterMode": "conditional",
            "extraction": {"location": "body", "path": "usage.output_tokens",
                           "event": "message_delta"},
            "predicates": {"mcpMethods": ["tools/call", "tools/call"], "mcpTools": ["search"],
                           "mcpToolsPresence": "must_not_exist"}}  # fmt: skip
    meter = create(api, meters, body, "meters")
    assert meter["extraction"]["event"] == "message_delta"
    assert meter["predicates"]["mcpMethods"] == ["tools/call"]
    assert meter["predicates"]["mcpTools"] == ["search"]
    assert meter["predicates"]["mcpToolsPresence"] == "absent"
    url = f"{meters}/{meter['meterId']}"
    changed = api.put(url, json={"extraction": {"location": "body", "path": "usage.total_tokens"}})
    assert changed.status_code == 200, changed.text
    assert "event" not in changed.json()["meters"][0]["extraction"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**TOKENS, "meterType": "tokens"}, "meterType"),
        ({**TOKENS, "meterType": 3}, "meterType"),
        ({**TOKENS, "meterActive": "yes"}, "meterActive"),
        ({**TOKENS, "meterMode": "some"}, "meterMode"),
        ({**TOKENS, "limits": {"day": -1}}, "limits.day"),
        ({**TOKENS, "limits": {"day": "1000"}}, "limits.day"),
        ({**TOKENS, "limits": {"day": 1.5}}, "limits.day"),
        ({**TOKENS, "limits": {"week": 10}}, "limits.week"),
        ({**TOKENS, "limits": [1000]}, "limits"),
        ({**TOKENS, "extraction": {"location": "body", "path": "usage..total"}}, "extraction.path"),
        ({**TOKENS, "extraction": {"location": "body", "path": ""}}, "extraction.path"),
        ({**TOKENS, "extraction": {"location": "cookie", "name": "x"}}, "extraction.location"),
        ({**TOKENS, "extraction": {"location": "header"}}, "extraction.name"),
        ({**TOKENS, "extraction": None}, "extraction"),
        ({**TOKENS, "meterType": "request_count"}, "extraction"),
        ({**TOKENS, "meterMode": "conditional"}, "predicates"),
        ({**TOKENS, "predicates": {"methods": ["GET"]}}, "predicates"),
        ({**TOKENS, "meterMode": "conditional",
          "predicates": {"bodyChecks": [{"path": "a.*x", "equals": 1}]}},
         "predicates.bodyChecks.0.path"),
        ({**TOKENS, "meterMode": "conditional",
          "predicates": {"bodyChecks": [{"path": "model"}]}}, "predicates.bodyChecks.0.equals"),
        ({**TOKENS, "meterMode": "conditional",
          "predicates": {"bodyChecks": [{"path": "model", "valuePattern": "(a"}]}},
         "predicates.bodyChecks.0.valuePattern"),
        ({**TOKENS, "meterMode": "conditional", "predicates": {"pathPattern": "(?=x)"}},
         "predicates.pathPattern"),
        ({**TOKENS, "meterMode": "conditional",
          "predicates": {"methods": ["GET"], "regexFlags": "x"}}, "predicates.regexFlags"),
        ({**TOKENS, "meterName": ""}, "meterName"),
        ({**TOKENS, "limitMode": "average"}, "limitMode"),
        ({**TOKENS, "limitMode": None}, "limitMode"),
        ({**TOKENS, "extraction": {"location": "header", "name": "x", "event": "e"}},
         "extraction.event"),
        ({**TOKENS, "extraction": {"location": "body", "path": "a", "event": ""}},
         "extraction.event"),
        ({**TOKENS, "extraction": {"location": "body", "path": "a", "event": "a\nb"}},
         "extraction.event"),
        ({**TOKENS, "extraction": {"location": "body", "path": "a", "event": 5}},
         "extraction.event"),
        ({**TOKENS, "meterMode": "conditional", "predicates": {"mcpTools": [""]}},
         "predicates.mcpTools.0"),
        ({**TOKENS, "meterMode": "conditional", "predicates": {"mcpTools": "search"}},
         "predicates.mcpTools"),
        ({**TOKENS, "meterMode": "conditional", "predicates": {"mcpMethods": [1]}},
         "predicates.mcpMethods.0"),
        ({**TOKENS, "meterMode": "conditional",
          "predicates": {"mcpTools": ["a"], "mcpToolsPresence": "maybe"}},
         "predicates.mcpToolsPresence"),
        ({**TOKENS, "predicates": {"mcpTools": ["a"]}}, "predicates"),
        ({k: v for k, v in TOKENS.items() if k != "meterType"}, "meterType"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field(api, meters, body, field):
    assert_invalid(api.post(meters, json=body), field)


def test_bad_update_changes_nothing(api, meters):
    meter = create(api, meters, TOKENS, "meters")
    url = f"{meters}/{meter['meterId']}"
    assert_invalid(api.put(url, json={"limits": {"day": -5}}), "limits.day")
    assert_invalid(api.put(url, json={"meterType": "request_count"}), "extraction")
    assert api.get(url).json()["meters"][0]["limits"] == {"day": 1000}


def test_other_clients_cannot_see_meters(api, meters, stranger):
    meter = create(api, meters, TOKENS, "meters")
    other = api.as_user(stranger)
    assert other.get(meters).status_code in (403, 404)
    assert other.delete(f"{meters}/{meter['meterId']}").status_code in (403, 404)
