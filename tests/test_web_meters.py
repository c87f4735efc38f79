"""A proxy's limits, price and meters in the web admin, in headless Chromium.

A real admin, a real data plane and the recording upstream on 127.0.0.1: a
meter made through the form counts real requests, and its bars show it. Bad
input shows the Core API's own message next to the field. Nothing is mocked.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from admin.web.plain_errors import plain
from tests.proxy_support import CALLER_KEY, Setup, call
from tests.support import add_member, error_fields
from tests.test_meters import synced
from tests.test_web_admin import choose
from tests.web_support import reload_until, sign_in

AUTH = {"X-API-Key": CALLER_KEY}


@pytest.fixture
def made(api, upstream) -> Setup:
    """A fresh client of `owner` with a proxy toward the recording upstream."""
    return Setup(api, upstream)


def open_proxy(page: Page, admin_server, owner, made: Setup) -> None:
    sign_in(page, admin_server.base_url, owner.token)
    page.goto(f"{admin_server.base_url}/ui/c/{made.client_id}/proxies/{made.id}")


def field_of(page: Page, label: str):
    """The form field block (label, input, errors) of the input labelled `label`."""
    return page.locator(".field", has=page.get_by_label(label, exact=True))


def meter_card(page: Page, name: str):
    return page.locator(f".meter[data-meter='{name}']")


def window_row(page: Page, name: str, window: str):
    return meter_card(page, name).locator(f"tr[data-window='{window}']")


def test_a_meter_made_in_the_form_shows_its_use_then_is_edited_and_deleted(
    page: Page, admin_server, gateway, owner, made
):
    open_proxy(page, admin_server, owner, made)
    page.get_by_role("link", name="Meters", exact=True).click()
    expect(page.get_by_text("No meter yet")).to_be_visible()

    page.get_by_role("button", name="New meter").click()
    page.get_by_label("Name", exact=True).fill("Calls")
    choose(page, "Type", "request_count (each request counts 1)")
    page.get_by_label("Limit per minute").fill("500")
    page.get_by_label("Limit per day").fill("100")
    page.get_by_role("button", name="Create meter").click()
    expect(page.get_by_text("Meter Calls created.")).to_be_visible()
    expect(window_row(page, "Calls", "day").locator(".usage")).to_have_text("0 / 100")
    expect(window_row(page, "Calls", "hour")).to_have_count(0)  # no limit, nothing counted

    synced(admin_server, gateway)
    for _ in range(3):
        assert call(gateway, "GET", f"/api/{made.id}/metered", headers=AUTH).status_code == 200
    day = window_row(page, "Calls", "day")
    reload_until(page, day.locator(".usage", has_text=re.compile(r"^3 / 100$")))
    bar = day.get_by_role("meter", name="Calls per day")
    expect(bar).to_have_attribute("value", "3")
    expect(bar).to_have_attribute("max", "100")
    expect(window_row(page, "Calls", "minute").get_by_role("meter")).to_have_attribute("max", "500")
    # Counted without a limit in that window: the count shows, without a bar.
    expect(window_row(page, "Calls", "month").locator(".usage")).to_have_text("3 / no limit")
    expect(window_row(page, "Calls", "month").get_by_role("meter")).to_have_count(0)

    meter_card(page, "Calls").get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Limit per day")).to_have_value("100")
    expect(page.get_by_label("Limit mode (response_value meters)")).to_have_value("reached")
    page.get_by_label("Limit per day").fill("50")
    page.get_by_label("Limit per minute").fill("")
    choose(page, "Mode", "conditional (predicates below)")
    page.get_by_label("Request body field (JSON path), e.g. model").fill("model")
    page.get_by_label("equals (a JSON value; plain text is taken as a string)").fill("big")
    page.get_by_label("MCP methods, e.g. tools/call (comma-separated; MCP proxies)").fill(
        "tools/call"
    )
    page.get_by_label("MCP tools, e.g. search (comma-separated; MCP proxies)").fill("search, x")
    choose(page, "MCP tool", "the tool must be none of them")
    page.get_by_role("button", name="Save meter").click()
    expect(page.get_by_text("Meter Calls saved.")).to_be_visible()
    card = meter_card(page, "Calls")
    expect(card).to_contain_text('counts only where model = "big"; MCP tools/call tools other')
    expect(window_row(page, "Calls", "day").locator(".usage")).to_have_text("3 / 50")
    expect(window_row(page, "Calls", "minute").get_by_role("meter")).to_have_count(0)
    meters = made.api.get(f"{made.base}/proxies/{made.id}/meters").json()["meters"]
    assert meters[0]["predicates"]["bodyChecks"] == [{"path": "model", "equals": "big"}]
    assert meters[0]["predicates"]["mcpTools"] == ["search", "x"]
    assert meters[0]["predicates"]["mcpToolsPresence"] == "absent"
    assert meters[0]["limits"] == {"day": 50}

    card.get_by_role("link", name="Edit").click()  # the stored values come back as typed
    expect(
        page.get_by_label("equals (a JSON value; plain text is taken as a string)")
    ).to_have_value("big")
    expect(page.get_by_label("MCP tool", exact=True)).to_have_value("absent")
    page.get_by_role("link", name="Cancel").click()

    meter_card(page, "Calls").get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete meter").click()
    expect(page.get_by_text("Meter Calls deleted.")).to_be_visible()
    expect(page.get_by_text("No meter yet")).to_be_visible()
    assert made.api.get(f"{made.base}/proxies/{made.id}/meters").json()["meters"] == []


BAD_METERS = [
    # (what the user types, the field that shows the message, the API body for the same)
    (
        {"Limit per day": "-1"},
        "Limit per day",
        {"meterType": "request_count", "limits": {"day": -1}},
    ),
    (
        {"Type": "response_value (a number read from the response)"},
        "Read the value from",
        {"meterType": "response_value"},
    ),
    (
        {
            "Type": "response_value (a number read from the response)",
            "Read the value from": "JSON body",
            "JSON path in the response body, e.g. usage.total_tokens": "usage..total",
        },
        "JSON path in the response body, e.g. usage.total_tokens",
        {"meterType": "response_value", "extraction": {"location": "body", "path": "usage..total"}},
    ),
    (
        {
            "Type": "response_value (a number read from the response)",
            "Read the value from": "response header",
            "Response header name": "x-tokens",
            "Event-stream answers: only events named, e.g. message_delta (empty: every event)": (
                "message_delta"
            ),
        },
        "Event-stream answers: only events named, e.g. message_delta (empty: every event)",
        {
            "meterType": "response_value",
            "extraction": {"location": "header", "name": "x-tokens", "event": "message_delta"},
        },
    ),
    (
        {"Mode": "conditional (predicates below)"},
        "Mode",
        {"meterType": "request_count", "meterMode": "conditional"},
    ),
    (
        {"Methods, e.g. POST (empty: any)": "FETCH"},
        "Methods, e.g. POST (empty: any)",
        {"meterType": "request_count", "meterMode": "all", "predicates": {"methods": ["FETCH"]}},
    ),
]


@pytest.mark.parametrize(("typed", "label", "body"), BAD_METERS)
def test_bad_meter_input_shows_the_apis_message_by_the_field(
    page: Page, admin_server, owner, made, typed, label, body
):
    meters = f"{made.base}/proxies/{made.id}/meters"
    refused = made.api.post(meters, json={"meterName": "Bad", **body})
    assert refused.status_code == 400, refused.text
    # The page words the API's message plainly (admin/web/plain_errors.py), by the field.
    messages = [plain(name, m) for name, ms in error_fields(refused).items() for m in ms]
    assert messages, refused.text

    open_proxy(page, admin_server, owner, made)
    page.goto(f"{admin_server.base_url}/ui/c/{made.client_id}/proxies/{made.id}/meters/new")
    page.get_by_label("Name", exact=True).fill("Bad")
    for name, value in typed.items():
        if page.get_by_label(name, exact=True).evaluate("e => e.tagName") == "SELECT":
            choose(page, name, value)
        else:
            page.get_by_label(name, exact=True).fill(value)
    page.get_by_role("button", name="Create meter").click()
    errors = field_of(page, label).get_by_role("alert")
    for message in messages:
        expect(errors.filter(has_text=message)).to_have_count(1)
    expect(page.get_by_label(label, exact=True)).to_be_visible()  # the form stays, as typed
    assert made.api.get(meters).json()["meters"] == []


def test_limits_and_price_are_shown_and_set_with_the_apis_messages(
    page: Page, admin_server, owner, made
):
    open_proxy(page, admin_server, owner, made)
    proxy = made.api.get(f"{made.base}/proxies/{made.id}").json()["proxies"][0]
    expect(page.locator("#proxy-limits-summary")).to_contain_text(
        f"{proxy['proxyMaxRequestsPerMinute']} requests per minute"
    )
    page.get_by_role("link", name="Limits and price").click()
    maxima = page.locator("#platform-maxima")
    expect(maxima).to_contain_text(re.compile(r"Platform maxima: \d+ per minute, \d+ per day"))
    per_minute_max = int(re.search(r"(\d+) per minute", maxima.inner_text()).group(1))

    # Over the platform maximum: the API's message by the field, nothing saved.
    over = made.api.put(
        f"{made.base}/proxies/{made.id}", json={"proxyMaxRequestsPerMinute": per_minute_max + 1}
    )
    assert over.status_code == 400
    page.get_by_label("Requests per minute").fill(str(per_minute_max + 1))
    page.get_by_role("button", name="Save limits").click()
    expect(field_of(page, "Requests per minute").get_by_role("alert")).to_have_text(
        error_fields(over)["proxyMaxRequestsPerMinute"]
    )
    page.get_by_label("Requests per minute").fill("30")
    page.get_by_label("Requests per day").fill("500")
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_text("Limits saved.")).to_be_visible()
    expect(page.locator("#limit-minute")).to_have_text("30")
    expect(page.locator("#limit-day")).to_have_text("500")
    saved = made.api.get(f"{made.base}/proxies/{made.id}").json()["proxies"][0]
    assert (saved["proxyMaxRequestsPerMinute"], saved["proxyMaxRequestsPerDay"]) == (30, 500)

    expect(page.locator("#price-per-request")).to_have_text(re.compile(r"^0(\.0+)?$"))
    page.get_by_label("Credits per request, e.g. 0.25").fill("abc")
    page.get_by_role("button", name="Save price").click()
    bad = made.api.put(f"{made.base}/proxies/{made.id}/price", json={"perRequest": "abc"})
    expect(field_of(page, "Credits per request, e.g. 0.25").get_by_role("alert")).to_have_text(
        error_fields(bad)["perRequest"]
    )
    page.get_by_label("Credits per request, e.g. 0.25").fill("0.25")
    page.get_by_label("Credits per meter units").fill("0.002")
    page.get_by_label("Meter units priced together").fill("1000")
    page.get_by_role("button", name="Save price").click()
    expect(page.get_by_text("Price saved.")).to_be_visible()
    price = made.api.get(f"{made.base}/proxies/{made.id}/price").json()["prices"][0]
    expect(page.locator("#price-per-request")).to_have_text(price["perRequest"])
    expect(page.locator("#price-per-units")).to_have_text(price["perMeterUnits"])
    expect(page.locator("#price-unit-size")).to_have_text("1000")
    assert price["meterUnitSize"] == 1000


def test_a_reading_member_sees_the_bars_but_no_write_forms(
    page: Page, admin_server, owner, make_user, made
):
    meters = f"{made.base}/proxies/{made.id}/meters"
    made.api.post(meters, json={"meterName": "Calls", "meterType": "request_count",
                                "limits": {"day": 10}})  # fmt: skip
    reader = make_user()
    add_member(made.api, made.client_id, reader, "user")
    sign_in(page, admin_server.base_url, reader.token)
    page.goto(f"{admin_server.base_url}/ui/c/{made.client_id}/proxies/{made.id}/meters")
    expect(window_row(page, "Calls", "day").get_by_role("meter")).to_have_attribute("max", "10")
    expect(page.get_by_role("button", name="New meter")).to_have_count(0)
    expect(meter_card(page, "Calls").get_by_role("link", name="Edit")).to_have_count(0)
    page.goto(f"{admin_server.base_url}/ui/c/{made.client_id}/proxies/{made.id}/limits")
    expect(page.locator("#limit-day")).to_be_visible()
    expect(page.locator("#limits-form")).to_have_count(0)
    expect(page.locator("#price-form")).to_have_count(0)
    new_meter = page.request.get(
        f"{admin_server.base_url}/ui/c/{made.client_id}/proxies/{made.id}/meters/new"
    )
    assert new_meter.status == 403


def test_editing_keeps_the_predicates_the_form_does_not_show(page: Page, admin_server, owner, made):
    meters = f"{made.base}/proxies/{made.id}/meters"
    predicates = {
        "headerChecks": [{"namePattern": "^x-tier$", "valuePattern": "^gold$"}],
        "queryChecks": [{"namePattern": "^beta$", "presence": "absent"}],
        "bodyChecks": [{"path": "model", "equals": "big"}, {"path": "stream", "equals": False}],
    }
    created = made.api.post(
        meters,
        json={"meterName": "Gold", "meterType": "request_count", "meterMode": "conditional",
              "predicates": predicates, "limits": {"day": 10}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    before = created.json()["meters"][0]

    open_proxy(page, admin_server, owner, made)
    page.goto(f"{admin_server.base_url}/ui/c/{made.client_id}/proxies/{made.id}/meters")
    meter_card(page, "Gold").get_by_role("link", name="Edit").click()
    expect(page.locator("#kept-predicates")).to_contain_text("header ^x-tier$")
    expect(page.locator("#kept-predicates")).to_contain_text("body stream")
    expect(page.get_by_label("Request body field (JSON path), e.g. model")).to_have_value("model")
    page.get_by_label("Limit per day").fill("20")
    page.get_by_role("button", name="Save meter").click()
    expect(page.get_by_text("Meter Gold saved.")).to_be_visible()

    after = made.api.get(f"{meters}/{before['meterId']}").json()["meters"][0]
    assert after["limits"] == {"day": 20}
    assert after["predicates"] == before["predicates"]
