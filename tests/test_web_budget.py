"""The web admin in headless Chromium: a client's budget, payload filters, and what the
rule explainer says about limits and filters.

A real admin process over the real store (SQLite or PostgreSQL), a real data plane
(`run_proxy.py`) and the recording upstream on 127.0.0.1 for the ledger's debits, and
Debian's Chromium driven by Playwright; data are set up through the real Core API.
Nothing is mocked.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.proxy_support import call
from tests.support import Api, add_member, create, new_client, new_proxy
from tests.test_budgets import AUTH, priced, until
from tests.web_support import reload_until, sign_in


def field_error(page: Page, form: str, label: str):
    """The error shown next to the field labelled `label` in form `form`."""
    return page.locator(f"{form} .field", has=page.get_by_label(label, exact=True)).locator(
        ".error"
    )


def test_an_owner_grants_credits_sets_the_threshold_and_pages_the_ledger(
    page: Page, admin_server, make_user
):
    owner = make_user()
    api = Api(admin_server.base_url, owner.token)
    client_id = new_client(api, "Budgeted")
    sign_in(page, admin_server.base_url, owner.token)
    page.get_by_role("link", name="Budgeted").first.click()
    page.get_by_role("link", name="Budget", exact=True).click()
    expect(page.get_by_role("heading", name="Budget", exact=True)).to_be_visible()
    expect(page.locator("#balance")).to_have_text("0.000000")
    expect(page.get_by_text("No ledger entries yet.")).to_be_visible()

    grant = page.locator("#grant-form")
    # The API's errors, next to the field: a negative, a too precise and a non-numeric amount.
    for amount in ("-1", "0.0000001", "ten"):
        grant.get_by_label("Amount (credits, e.g. 10.00)").fill(amount)
        grant.get_by_role("button", name="Grant").click()
        expect(field_error(page, "#grant-form", "Amount (credits, e.g. 10.00)")).not_to_have_count(
            0
        )
        expect(page.locator("#balance")).to_have_text("0.000000")
    assert api.get(f"/api/clients/{client_id}/budget/entries").json()["entries"] == []

    grant.get_by_label("Amount (credits, e.g. 10.00)").fill("1.50")
    grant.get_by_label("Description (optional)").fill("invoice 7")
    grant.get_by_role("button", name="Grant").click()
    expect(page.get_by_role("status")).to_have_text("Granted 1.500000 credits.")
    expect(page.locator("#balance")).to_have_text("1.500000")
    row = page.locator("#entries tbody tr").first
    expect(row).to_contain_text("grant")
    expect(row).to_contain_text("1.500000")
    expect(row).to_contain_text("invoice 7")
    expect(row).to_contain_text(owner.id)
    expect(page.locator("#low-budget")).to_have_count(0)

    threshold = page.locator("#threshold-form")
    threshold.get_by_label("Low-budget threshold (credits)").fill("-2")
    threshold.get_by_role("button", name="Save threshold").click()
    expect(
        field_error(page, "#threshold-form", "Low-budget threshold (credits)")
    ).not_to_have_count(0)
    threshold.get_by_label("Low-budget threshold (credits)").fill("2.00")
    threshold.get_by_role("button", name="Save threshold").click()
    expect(page.locator("#threshold")).to_have_text("2.000000")
    expect(page.locator("#low-budget")).to_be_visible()
    assert api.get(f"/api/clients/{client_id}/budget").json()["budget"][0]["lowBudget"] is True

    # 21 more grants: the newest 20 on the first page, the rest one click away.
    for n in range(21):
        body = {"amount": "0.01", "description": f"top-up {n}"}
        assert api.post(f"/api/clients/{client_id}/budget/grants", json=body).status_code == 201
    page.reload()
    expect(page.locator("#balance")).to_have_text("1.710000")
    expect(page.locator("#entries tbody tr")).to_have_count(20)
    expect(page.locator("#entries tbody tr").first).to_contain_text("top-up 20")
    page.get_by_role("link", name="Older entries").click()
    expect(page.locator("#entries tbody tr")).to_have_count(2)
    expect(page.locator("#entries tbody tr").first).to_contain_text("top-up 0")
    expect(page.locator("#entries tbody tr").last).to_contain_text("invoice 7")
    expect(page.get_by_role("link", name="Older entries")).to_have_count(0)
    page.get_by_role("link", name="Newest entries").click()
    expect(page.locator("#entries tbody tr")).to_have_count(20)


def test_a_user_member_reads_budget_and_filters_but_gets_no_write_form(
    page: Page, admin_server, make_user
):
    owner, reader = make_user(), make_user()
    api = Api(admin_server.base_url, owner.token)
    client_id = new_client(api, "Read budget")
    assert (
        api.post(f"/api/clients/{client_id}/budget/grants", json={"amount": "3"}).status_code == 201
    )
    add_member(api, client_id, reader, "user")
    sign_in(page, admin_server.base_url, reader.token)
    page.goto(f"{admin_server.base_url}/ui/c/{client_id}/budget")
    expect(page.locator("#balance")).to_have_text("3.000000")
    expect(page.locator("#entries tbody tr")).to_have_count(1)
    expect(page.get_by_role("heading", name="Grant credits")).to_have_count(0)
    expect(page.locator("#grant-form")).to_have_count(0)
    expect(page.locator("#threshold-form")).to_have_count(0)
    # A grant posted by hand, with the session's CSRF token, is not acted on (and the API
    # would refuse it anyway).
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    response = page.request.post(
        f"{admin_server.base_url}/ui/c/{client_id}/budget",
        form={
            "gr-amount": "100",
            "gr-csrf_token": token,
            "th-threshold": "50",
            "th-csrf_token": token,
        },
    )
    assert response.status == 200
    state = api.get(f"/api/clients/{client_id}/budget").json()["budget"][0]
    assert (state["balance"], state["lowBudgetThreshold"]) == ("3.000000", "0.000000")
    # Filters: listed for the reader, but no form and no delete.
    proxy_id = new_proxy(api, client_id)["proxyId"]
    filters = f"/clients/{client_id}/proxies/{proxy_id}/filters"
    made = create(api, f"/api{filters}", {"action": "destroy", "paths": ["pin"]}, "filters")
    page.goto(f"{admin_server.base_url}/ui/c/{client_id}/proxies/{proxy_id}")
    page.get_by_role("link", name="Payload filters").click()
    expect(page.locator("#filters tbody tr")).to_contain_text("pin")
    expect(page.locator("#filter-form")).to_have_count(0)
    expect(page.locator("#filters").get_by_role("link", name="Delete")).to_have_count(0)
    ui_filters = f"{admin_server.base_url}/ui/c/{client_id}/proxies/{proxy_id}/filters"
    delete = f"{ui_filters}/{made['filterId']}/delete"
    assert page.goto(delete).status == 403
    expect(page.get_by_text("Your role in this client does not allow this.")).to_be_visible()
    assert len(api.get(f"/api{filters}").json()["filters"]) == 1
    stranger = make_user()
    sign_in(page, admin_server.base_url, stranger.token)
    assert page.goto(f"{admin_server.base_url}/ui/c/{client_id}/budget").status == 404
    assert page.goto(ui_filters).status == 404


def test_filters_are_added_in_order_at_two_scopes_and_the_explainer_names_them(
    page: Page, admin_server, make_user
):
    owner = make_user()
    api = Api(admin_server.base_url, owner.token)
    client_id = new_client(api, "Filtered")
    proxy = new_proxy(api, client_id, proxyName="Shop proxy", proxyMaxRequestsPerMinute=5)
    proxy_id = proxy["proxyId"]
    sign_in(page, admin_server.base_url, owner.token)
    page.goto(f"{admin_server.base_url}/ui/c/{client_id}/proxies/{proxy_id}")
    page.get_by_role("link", name="Payload filters").click()
    expect(
        page.get_by_role("heading", name="Payload filters of the proxy Shop proxy")
    ).to_be_visible()
    expect(page.get_by_text("No payload filter on this proxy.")).to_be_visible()

    form = page.locator("#filter-form")
    paths = "JSON paths, one per line (e.g. card.number, items.*.sku)"
    # A bad path: the API's reason, naming the line, and nothing stored.
    form.get_by_label("Action").select_option("destroy")
    form.get_by_label(paths).fill("card.number\na..b")
    form.get_by_role("button", name="Add filter").click()
    error = field_error(page, "#filter-form", paths)
    expect(error).to_contain_text("a..b:")
    expect(error).to_contain_text("empty segment")
    expect(form.get_by_label(paths)).to_have_value("card.number\na..b")
    assert api.get(f"/api/clients/{client_id}/proxies/{proxy_id}/filters").json()["filters"] == []

    form.get_by_label(paths).fill("card.number\n\n")
    form.get_by_role("button", name="Add filter").click()
    expect(page.get_by_role("status")).to_contain_text("added")
    form.get_by_label("Action").select_option("destroy")
    form.get_by_label(paths).fill("secret")
    form.get_by_label("Notes (optional)").fill("second")
    form.get_by_role("button", name="Add filter").click()
    rows = page.locator("#filters tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("card.number")
    expect(rows.nth(1)).to_contain_text("secret")
    expect(rows.nth(1)).to_contain_text("second")
    stored = api.get(f"/api/clients/{client_id}/proxies/{proxy_id}/filters").json()["filters"]
    assert [(f["action"], f["paths"]) for f in stored] == [
        ("destroy", ["card.number"]),
        ("destroy", ["secret"]),
    ]

    # The target's scope, reached from the proxy's scope list: a retain filter.
    page.locator("#proxy-scopes").get_by_role("link", name="target", exact=True).click()
    expect(
        page.get_by_role("heading", name="Payload filters of the target Upstream")
    ).to_be_visible()
    form.get_by_label("Action").select_option("retain")
    form.get_by_label(paths).fill("id\nname\nitems.*.sku\ncard")
    form.get_by_role("button", name="Add filter").click()
    expect(page.locator("#filters tbody tr")).to_have_count(1)
    expect(page.locator("#filters tbody tr")).to_contain_text("items.*.sku")
    # The targets list links each target's filters too (also for targets no proxy uses).
    page.goto(f"{admin_server.base_url}/ui/c/{client_id}/targets")
    upstream_row = page.locator("tr", has_text="Upstream")
    upstream_row.get_by_role("link", name="Payload filters").click()
    expect(page.locator("#filters tbody tr")).to_contain_text("items.*.sku")
    # ... and so do the credentials list and a credential's page.
    page.goto(f"{admin_server.base_url}/ui/c/{client_id}/credentials")
    caller = proxy["proxyProxyCredentialId"]
    page.locator(f"a[href$='/credentials/{caller}/filters']").click()
    heading = page.get_by_role("heading", name=re.compile("^Payload filters of the credential"))
    expect(heading).to_be_visible()
    page.goto(f"{admin_server.base_url}/ui/c/{client_id}/credentials/{caller}")
    page.get_by_role("link", name="Payload filters").click()
    expect(heading).to_be_visible()

    # Delete the proxy's second filter, through the confirmation page.
    page.goto(f"{admin_server.base_url}/ui/c/{client_id}/proxies/{proxy_id}/filters")
    rows.nth(1).get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete filter").click()
    expect(page.get_by_role("status")).to_have_text("Filter deleted.")
    expect(rows).to_have_count(1)
    stored = api.get(f"/api/clients/{client_id}/proxies/{proxy_id}/filters").json()["filters"]
    assert [f["paths"] for f in stored] == [["card.number"]]

    # Edit the remaining one: a bad path is named by its line and nothing changes; then a
    # good change is saved in place (same filter, same position).
    kept_id = stored[0]["filterId"]
    rows.nth(0).get_by_role("link", name="Edit").click()
    expect(form.get_by_label(paths)).to_have_value("card.number")
    form.get_by_label(paths).fill("card.number\nb..c")
    form.get_by_role("button", name="Save filter").click()
    expect(field_error(page, "#filter-form", paths)).to_contain_text("b..c:")
    form.get_by_label(paths).fill("card.number\ncard.cvc")
    form.get_by_label("Action").select_option("destroy")
    form.get_by_role("button", name="Save filter").click()
    expect(page.get_by_role("status")).to_have_text(f"Filter {kept_id} saved.")
    expect(rows.nth(0)).to_contain_text("card.cvc")
    stored = api.get(f"/api/clients/{client_id}/proxies/{proxy_id}/filters").json()["filters"]
    assert [(f["filterId"], f["paths"]) for f in stored] == [(kept_id, ["card.number", "card.cvc"])]

    # Meters: one every request counts toward, one for POST /v1/chat only, one that also
    # checks the body, and an inactive one (not listed).
    meters = f"/api/clients/{client_id}/proxies/{proxy_id}/meters"
    base = {"meterType": "request_count", "meterActive": True}
    create(api, meters, {**base, "meterName": "all calls", "meterMode": "all",
                         "limits": {"day": 100}}, "meters")  # fmt: skip
    chat = {"methods": ["POST"], "pathPattern": "^/v1/chat"}
    create(api, meters, {**base, "meterName": "chat calls", "meterMode": "conditional",
                         "predicates": chat}, "meters")  # fmt: skip
    big = {**chat, "bodyChecks": [{"path": "model", "equals": "big"}]}
    create(api, meters, {**base, "meterName": "big chats", "meterMode": "conditional",
                         "predicates": big, "limits": {"minute": 2}}, "meters")  # fmt: skip
    create(api, meters, {**base, "meterName": "retired", "meterMode": "all",
                         "meterActive": False}, "meters")  # fmt: skip

    page.goto(f"{admin_server.base_url}/ui/c/{client_id}/proxies/{proxy_id}/explain")
    explain = page.locator("#explain-form")
    explain.get_by_label("Method").select_option("GET")
    explain.get_by_label("Path below the proxy").fill("/v1/items")
    explain.get_by_role("button", name="Explain").click()
    limits = page.locator("#explain-limits")
    expect(limits.locator("[data-window=minute]")).to_have_text("5 per minute")
    expect(limits.locator("[data-window=day]")).to_contain_text("per day")
    meter_rows = page.locator("#explain-meters tbody tr")
    expect(meter_rows).to_have_count(3)
    expect(meter_rows.nth(0)).to_contain_text("all calls")
    expect(meter_rows.nth(0)).to_contain_text("100 per day")
    expect(meter_rows.nth(0).locator("td").last).to_have_text("counts")
    expect(meter_rows.nth(1).locator("td").last).to_have_text("not counted")
    expect(meter_rows.nth(1)).to_contain_text("counts only")
    expect(meter_rows.nth(2).locator("td").last).to_have_text("not counted")
    expect(page.locator("#explain-meters")).not_to_contain_text("retired")
    steps = page.locator("#explain-filters li")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("retain id, name, items.*.sku, card (target scope)")
    expect(steps.nth(1)).to_contain_text("destroy card.number, card.cvc (proxy scope)")

    explain.get_by_label("Method").select_option("POST")
    explain.get_by_label("Path below the proxy").fill("/v1/chat/completions")
    explain.get_by_role("button", name="Explain").click()
    expect(meter_rows.nth(1).locator("td").last).to_have_text("counts")
    expect(meter_rows.nth(2).locator("td").last).to_have_text(
        "counts if the body passes its checks"
    )
    expect(meter_rows.nth(2)).to_contain_text("2 per minute")


def test_the_explain_api_answers_limits_meters_and_filters(admin_server, make_user):
    """The additive fields of the explain answer, and that a user member may read them."""
    owner, reader = make_user(), make_user()
    api = Api(admin_server.base_url, owner.token)
    client_id = new_client(api, "Explained")
    proxy = new_proxy(api, client_id)
    add_member(api, client_id, reader, "user")
    filters = f"/api/clients/{client_id}/credentials/{proxy['proxyProxyCredentialId']}/filters"
    create(api, filters, {"action": "destroy", "paths": ["token"]}, "filters")
    path = f"/api/clients/{client_id}/proxies/{proxy['proxyId']}/explain"
    answer = Api(admin_server.base_url, reader.token).post(
        path, json={"method": "GET", "path": "/x"}
    )
    assert answer.status_code == 200, answer.text
    explanation = answer.json()["explanations"][0]
    assert explanation["rateLimits"] == [
        {"window": "minute", "limit": proxy["proxyMaxRequestsPerMinute"]},
        {"window": "day", "limit": proxy["proxyMaxRequestsPerDay"]},
    ]
    assert explanation["meters"] == []
    assert [(f["scope"], f["action"], f["paths"]) for f in explanation["filters"]] == [
        ("proxyCredential", "destroy", ["token"])
    ]
    document = api.get("/api/openapi.json").json()
    schemas = str(document["components"]) if "components" in document else str(document)
    for name in ("rateLimits", "dependsOnBody", "filterId"):
        assert name in schemas


def test_a_grant_from_the_page_lets_a_priced_proxy_answer_and_its_debits_show(
    page: Page, admin_server, owner, api, upstream, gateway
):
    """0.25 per request, threshold 0.50: a 1.00 grant from the page, three calls through
    the real gateway, then the page shows three debits, 0.25 left and the low-budget alert."""
    made = priced(api, upstream, gateway, "0.25", threshold="0.50")
    sign_in(page, admin_server.base_url, owner.token)
    page.goto(f"{admin_server.base_url}/ui/c/{made.client_id}/budget")
    page.locator("#grant-form").get_by_label("Amount (credits, e.g. 10.00)").fill("1.00")
    page.locator("#grant-form").get_by_role("button", name="Grant").click()
    expect(page.locator("#balance")).to_have_text("1.000000")
    expect(page.locator("#low-budget")).to_have_count(0)
    path = f"/api/{made.id}/web-paid"
    until(gateway, path, 200)  # the grant reached the gateway: the first paid call
    for _ in range(2):
        assert call(gateway, "GET", path, headers=AUTH).status_code == 200
    reload_until(page, page.locator("#entries tbody tr", has_text="debit").nth(2))
    debits = page.locator("#entries tbody tr", has_text="debit")
    expect(debits).to_have_count(3)
    expect(debits.first).to_contain_text("-0.250000")
    expect(debits.first).to_contain_text(made.id)
    expect(page.locator("#balance")).to_have_text("0.250000")
    expect(page.locator("#low-budget")).to_be_visible()
