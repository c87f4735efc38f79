"""Web pages over Core API features that had none (issue 15, item 4), in headless Chromium:
a client's default limits, its async jobs (list, detail with attempts, Replay of a
dead-lettered job), and a rule edited in place with lists of header and query checks, with
and without JavaScript. Real admin, real gateway (its own dispatcher), real upstream.
"""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Browser, Page, expect

from tests.async_support import AUTH, finished, submit, wait_for_job
from tests.proxy_support import Setup, call, wait_until_served
from tests.support import Api, create
from tests.web_support import WAIT_S, reload_until, sign_in


def csrf_of(page: Page) -> str:
    """The session's CSRF token, from the sign-out form every page carries."""
    return page.locator("input[name=csrf_token]").first.get_attribute("value")


def section(page: Page, name: str) -> None:
    page.locator("nav.sections").get_by_role("link", name=name, exact=True).click()


def test_client_limits_and_a_dead_lettered_job_replayed(
    page: Page, browser: Browser, admin_server, make_user, gateway, upstream
):
    owner, reader = make_user(), make_user()
    api = Api(admin_server.base_url, owner.token)
    made = Setup(api, upstream)
    added = api.post(
        f"{made.base}/members", json={"email": reader.email, "roles": ["user"]}
    )  # fmt: skip
    assert added.status_code == 201, added.text
    sign_in(page, admin_server.base_url, owner.token)
    page.goto(f"{admin_server.base_url}/ui/c/{made.client_id}/")

    # Limits: the defaults (the platform maxima at first), bounded, saved, used by new proxies.
    section(page, "Limits")
    expect(page.locator("#default-minute")).to_have_text("1000 requests")
    expect(page.locator("#platform-maxima")).to_contain_text("1000 per minute, 20000 per day")
    form = page.locator("#client-limits-form")
    form.get_by_label("Requests per minute").fill("0")
    form.get_by_role("button", name="Save default limits").click()
    minute = page.locator(".field", has=page.get_by_label("Requests per minute"))
    expect(minute.locator(".error")).to_have_text("Must be between 1 and 1000.")
    form.get_by_label("Requests per minute").fill("30")
    form.get_by_label("Requests per day").fill("500")
    form.get_by_role("button", name="Save default limits").click()
    expect(page.get_by_text("Default limits saved")).to_be_visible()
    expect(page.locator("#default-minute")).to_have_text("30 requests")
    expect(page.locator("#default-day")).to_have_text("500 requests")
    later = create(
        api,
        f"{made.base}/proxies",
        {"proxyName": "later", "proxyRegion": "us-east-1",
         "proxyProxyCredentialId": made.caller["sKey"], "proxyTargetId": made.target["sKey"],
         "proxyTargetCredentialId": made.target_cred["sKey"]},
        "proxies",
    )  # fmt: skip
    assert (later["proxyMaxRequestsPerMinute"], later["proxyMaxRequestsPerDay"]) == (30, 500)
    reader_context = browser.new_context()
    try:
        reader_page = reader_context.new_page()
        reader_page.set_default_timeout(WAIT_S * 1000)
        sign_in(reader_page, admin_server.base_url, reader.token)
        reader_page.goto(f"{admin_server.base_url}/ui/c/{made.client_id}/limits")
        expect(reader_page.locator("#default-minute")).to_have_text("30 requests")
        expect(reader_page.locator("#client-limits-form")).to_have_count(0)
        # A POST from a user member (with a valid CSRF token) is refused by the role check.
        forged = reader_page.request.post(
            f"{admin_server.base_url}/ui/c/{made.client_id}/limits",
            form={"csrf_token": csrf_of(reader_page), "per_minute": "5", "per_day": "5"},
        )
        assert forged.status == 403
    finally:
        reader_context.close()
    assert api.get(f"{made.base}").json()["clients"][0]["configuration"]["limits"] == {
        "requestsPerMinute": 30,
        "requestsPerDay": 500,
    }

    # An async job the target refuses with a Retry-After beyond the window: dead at once.
    wait_until_served(gateway, f"/api/{made.id}/status/200", AUTH)
    key = f"web-{uuid.uuid4().hex[:8]}"
    path = f"/flaky/{key}/1?status=503&header=Retry-After:3600"
    request_id = submit(gateway, made, path, data=b"order").json()["requestId"]
    assert wait_for_job(api, made, request_id, finished)["status"] == "dead"

    section(page, "Async jobs")
    jobs = page.locator("#async-jobs tbody tr")
    expect(jobs.filter(has_text=f"/flaky/{key}/1")).to_have_count(1)
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No async job delivered yet")).to_be_visible()
    page.get_by_label("Status").select_option("dead")
    page.get_by_role("button", name="Filter").click()
    row = page.locator(f"tr[data-job='{request_id}']")
    expect(row).to_contain_text("dead-lettered")
    row.get_by_role("link").click()
    expect(page.locator("#job-status")).to_have_text("dead-lettered (out of retries)")
    expect(page.get_by_role("heading", name="1 attempt", exact=True)).to_be_visible()
    expect(page.locator("#attempts tr[data-attempt='1']")).to_contain_text("503")
    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_text("Queued again")).to_be_visible()
    reload_until(page, page.locator("#job-status", has_text=re.compile(r"^delivered$")))
    expect(page.get_by_role("heading", name="2 attempts", exact=True)).to_be_visible()
    expect(page.locator("#attempts tr[data-attempt='2']")).to_contain_text("200")
    expect(page.get_by_role("button", name="Replay")).to_have_count(0)
    # Replaying what is not failed or dead is refused in words, not with an error page.
    again = page.request.post(
        f"{admin_server.base_url}/ui/c/{made.client_id}/proxies/{made.id}/async/{request_id}"
        "/replay",
        form={"csrf_token": csrf_of(page)},
    )
    assert again.status == 200 and "Only failed or dead requests can be replayed" in again.text()


def test_a_rule_is_edited_in_place_with_lists_of_checks(
    page: Page, browser: Browser, admin_server, make_user, gateway, upstream
):
    owner = make_user()
    api = Api(admin_server.base_url, owner.token)
    made = Setup(api, upstream)
    rules = f"{made.base}/proxies/{made.id}/rules"
    rule = create(
        api,
        rules,
        {"effect": "deny", "notes": "no debugging",
         "headerChecks": [{"namePattern": "^x-debug$", "presence": "present"}]},
        "rules",
    )  # fmt: skip
    wait_until_served(gateway, f"/api/{made.id}/v1", {**AUTH, "X-Debug": "1"},
                      lambda r: r.status_code == 403)  # fmt: skip
    sign_in(page, admin_server.base_url, owner.token)
    page.goto(f"{admin_server.base_url}/ui/c/{made.client_id}/proxies/{made.id}/rules")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name=re.compile(f"Rule {rule['ruleId']}"))).to_be_visible()
    expect(page.get_by_label("Header 1 name pattern")).to_have_value("^x-debug$")
    expect(page.get_by_label("Header 3 name pattern")).to_have_value("")  # spare rows

    # Rows added and removed with the script; a bad pattern is named next to its row.
    page.get_by_role("button", name="Add a header check").click()
    page.get_by_role("button", name="Add a header check").click()
    expect(page.get_by_label("Header 5 name pattern")).to_be_visible()
    page.get_by_label("Header 5 name pattern").fill("^x-env$")
    page.get_by_label("Header 5 value pattern (optional)").fill("^staging$")
    page.get_by_label("Header 2 name pattern").fill("(")
    page.get_by_label("Query parameter 1 name pattern").fill("^trace$")
    page.get_by_role("button", name="Save rule").click()
    bad = page.locator("td.has-error", has=page.get_by_label("Header 2 name pattern"))
    expect(bad.locator(".error")).to_have_text("Not a valid pattern (RE2 syntax): missing ): (.")
    expect(page.get_by_label("Header 3 name pattern")).to_have_value("^x-env$")  # filled first
    for row in (2, 1):  # the bad row, then the old check
        page.locator(
            "tr.check-row", has=page.get_by_label(f"Header {row} name pattern")
        ).get_by_role("button", name="Remove").click()
    expect(page.get_by_label("Header 1 name pattern")).to_have_value("^x-env$")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_text(f"Rule {rule['ruleId']} saved.")).to_be_visible()
    saved = api.get(f"{rules}/{rule['ruleId']}").json()["rules"][0]
    assert [(c["namePattern"], c["valuePattern"]) for c in saved["headerChecks"]] == [
        ("^x-env$", "^staging$")
    ]
    assert [c["namePattern"] for c in saved["queryChecks"]] == ["^trace$"]
    assert saved["notes"] == "no debugging" and saved["effect"] == "deny"

    # The data plane decides with the edited rule: both checks must hold to deny.
    headers = {**AUTH, "X-Env": "staging"}
    denied = wait_until_served(
        gateway, f"/api/{made.id}/v1?trace=1", headers, lambda r: r.status_code == 403
    )
    assert denied.status_code == 403
    assert call(gateway, "GET", f"/api/{made.id}/v1?trace=1", headers=AUTH).status_code == 200
    assert call(gateway, "GET", f"/api/{made.id}/v1", headers=headers).status_code == 200

    # Without JavaScript: spare rows to type into, no Add/Remove buttons needed.
    context = browser.new_context(java_script_enabled=False)
    try:
        plain = context.new_page()
        plain.set_default_timeout(WAIT_S * 1000)
        sign_in(plain, admin_server.base_url, owner.token)
        plain.goto(
            f"{admin_server.base_url}/ui/c/{made.client_id}/proxies/{made.id}"
            f"/rules/{rule['ruleId']}"
        )
        expect(plain.get_by_role("button", name="Add a header check")).to_be_hidden()
        plain.get_by_label("Header 2 name pattern").fill("^x-tenant$")
        plain.get_by_label("Header 2 must be").select_option("absent")
        plain.get_by_label("Query parameter 1 name pattern").fill("")
        plain.get_by_role("button", name="Save rule").click()
        expect(plain.get_by_text(f"Rule {rule['ruleId']} saved.")).to_be_visible()
        row = plain.locator("main table tbody tr").first
        expect(row).to_contain_text("^x-tenant$")
        expect(row).to_contain_text("must be absent")
    finally:
        context.close()
    saved = api.get(f"{rules}/{rule['ruleId']}").json()["rules"][0]
    assert [(c["namePattern"], c["presence"]) for c in saved["headerChecks"]] == [
        ("^x-env$", "present"),
        ("^x-tenant$", "absent"),
    ]
    assert saved["queryChecks"] == []
