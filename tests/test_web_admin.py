"""The web admin in headless Chromium: a new user's first proxy, end to end, and its guards.

A real admin, a real data plane and the recording upstream on 127.0.0.1;
Debian's Chromium driven by Playwright. Nothing is mocked.
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.proxy_support import free_port, start_proxy
from tests.support import Api, create_user, start_admin
from tests.web_support import WAIT_S, reload_until, sign_in

PROXY_KEY = "walk-caller-key-0001"
TARGET_SECRET = "walk-target-secret-0001"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """An admin that knows its gateway's address, and that gateway."""
    root = tmp_path_factory.mktemp("web")
    port = free_port()
    admin = start_admin(root / "admin", PORTCULLIS_GATEWAY_URL=f"http://127.0.0.1:{port}")
    gateway = start_proxy(admin, root / "gateway", port=port)
    yield SimpleNamespace(admin=admin, gateway=gateway)
    gateway.stop()
    admin.stop()


def new_user(stack, email: str) -> str:
    return create_user(stack.admin, email).token


def section(page: Page, name: str) -> None:
    """Follow a link of the client's section bar."""
    page.locator("nav.sections").get_by_role("link", name=name, exact=True).click()


def choose(page: Page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).select_option(label=option)


def test_a_new_user_sets_up_a_proxy_and_sees_its_traffic(page: Page, stack, upstream):
    token = new_user(stack, "walker@example.test")
    sign_in(page, stack.admin.base_url, token)
    expect(page.get_by_text("No client yet")).to_be_visible()

    # A password, then signing in with it.
    page.get_by_role("link", name="walker@example.test").click()
    page.locator("#password-form").get_by_label("New password (10 characters or more)").fill(
        "correct horse battery"
    )
    page.get_by_label("New password again").fill("correct horse battery")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_text("Password set.")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    page.locator("#password-login").get_by_label("Email").fill("walker@example.test")
    page.locator("#password-login").get_by_label("Password").fill("correct horse battery")
    page.locator("#password-login").get_by_role("button", name="Sign in").click()

    # A client, and the guidance for an empty one.
    page.get_by_label("Name", exact=True).fill("Walkthrough")
    page.get_by_role("button", name="Create client").click()
    expect(page.get_by_text("Client Walkthrough created")).to_be_visible()
    client_id = re.search(r"/ui/c/([^/]+)/", page.url).group(1)
    section(page, "Proxies")
    expect(page.get_by_text("No proxy yet: create a proxy credential")).to_be_visible()

    # A proxy credential and a target credential; an error shows next to its field.
    section(page, "Credentials")
    page.get_by_role("button", name="New credential").click()
    expect(page.get_by_text("never shown again")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Broken")
    choose(page, "Type", "Bearer token")
    page.get_by_role("button", name="Create credential").click()
    expect(
        page.locator(".field.has-error", has=page.get_by_label("Token (bearer, JWT)"))
    ).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Callers")
    choose(page, "Type", "API key")
    page.get_by_label("Key value (API key)").fill(PROXY_KEY)
    page.get_by_label("Header name (API key; empty: Authorization)").fill("X-API-Key")
    page.get_by_role("button", name="Create credential").click()
    expect(page.get_by_text("Credential Callers created")).to_be_visible()
    page.get_by_role("button", name="New credential").click()
    page.get_by_label("Name", exact=True).fill("Upstream key")
    choose(page, "Used as", "target credential (injected toward the API)")
    choose(page, "Type", "Bearer token")
    page.get_by_label("Token (bearer, JWT)").fill(TARGET_SECRET)
    page.get_by_role("button", name="Create credential").click()
    expect(page.get_by_text("Credential Upstream key created")).to_be_visible()
    assert TARGET_SECRET not in page.content() and PROXY_KEY not in page.content()

    # A target at the local upstream.
    section(page, "Targets")
    page.get_by_role("button", name="New target").click()
    page.get_by_label("Name", exact=True).fill("Echo")
    page.get_by_label("Base URL").fill(upstream.base_url + "/base")
    page.get_by_label("Test path (for the Test button)").fill("/status/200")
    page.get_by_role("button", name="Create target").click()
    expect(page.get_by_text("Target Echo created")).to_be_visible()

    # The proxy, its URL and curl example, and a deny rule.
    section(page, "Proxies")
    page.get_by_role("button", name="New proxy").click()
    page.get_by_label("Name", exact=True).fill("Echo proxy")
    choose(page, "Proxy credential (what callers present)", "Callers")
    choose(page, "Target", "Echo")
    choose(page, "Target credential (what the gateway injects)", "Upstream key")
    page.get_by_role("button", name="Create proxy").click()
    expect(page.get_by_role("heading", name="Echo proxy")).to_be_visible()  # lands on its page
    proxy_id = re.search(r"/proxies/(proxy_[0-9a-f]+)", page.url).group(1)
    expect(page.locator("#proxy-url")).to_have_text(f"{stack.gateway.base_url}/api/{proxy_id}")
    expect(page.locator("#curl-example")).to_contain_text('-H "X-API-Key: $PROXY_KEY"')
    page.get_by_role("link", name="Rules", exact=True).click()
    page.get_by_role("button", name="New rule").click()
    choose(page, "Effect", "deny")
    page.get_by_label("Path pattern (RE2), e.g. ^/v1/").fill("^/admin")
    page.get_by_label("Notes").fill("no admin paths")
    page.get_by_role("button", name="Add rule").click()
    added = page.get_by_text(re.compile(r"Rule rule_[0-9a-f]+ added"))
    expect(added).to_be_visible()  # the page after the post, not the form still showing
    rule_id = re.search(r"Rule (rule_[0-9a-f]+) added", added.inner_text()).group(1)

    # The explainer decides as the gateway will.
    page.goto(f"{stack.admin.base_url}/ui/c/{client_id}/proxies/{proxy_id}/explain")
    choose(page, "Method", "GET")
    page.get_by_label("Path below the proxy").fill("/admin/users")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#decision")).to_have_text("denied")
    expect(page.locator("tr[data-scope=proxy]")).to_contain_text(rule_id)
    page.get_by_label("Path below the proxy").fill("/v1/items")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#decision")).to_have_text("allowed")

    # The target's Test goes through the real gateway.
    section(page, "Targets")
    page.get_by_role("link", name="Echo").click()
    page.get_by_role("button", name="Test through the gateway").click()
    expect(page.locator("#test-result")).to_contain_text("Status 200")

    # A real request through the real gateway, then the gateway's denial of the rule.
    url = f"{stack.gateway.base_url}/api/{proxy_id}"
    deadline = time.monotonic() + WAIT_S
    while (
        sent := requests.get(f"{url}/v1/items", headers={"X-API-Key": PROXY_KEY}, timeout=10)
    ).status_code != 200:
        assert time.monotonic() < deadline, sent.text
        time.sleep(0.1)  # the data plane picks up the new proxy within a second
    assert upstream.received[-1].path == "/base/v1/items"
    assert ("Authorization", f"Bearer {TARGET_SECRET}") in upstream.received[-1].headers
    denied = requests.get(f"{url}/admin/x", headers={"X-API-Key": PROXY_KEY}, timeout=10)
    assert denied.status_code == 403 and denied.json()["error"]["details"]["ruleId"] == rule_id

    # In the request log, with its checks; in the telemetry chart.
    page.goto(f"{stack.admin.base_url}/ui/c/{client_id}/proxies/{proxy_id}/requests")
    row = page.locator("#request-log tr", has_text="/v1/items")
    reload_until(page, row)
    expect(row.first).to_contain_text("200")
    page.get_by_label("Status").select_option("errors")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#request-log")).to_contain_text("403")
    expect(page.locator("#request-log")).not_to_contain_text("/v1/items")
    page.goto(f"{stack.admin.base_url}/ui/c/{client_id}/proxies/{proxy_id}/requests")
    row.first.get_by_role("link").click()
    expect(page.locator("#validation")).to_contain_text("✓ The request was sent to the target")
    expect(page.locator("#validation")).to_contain_text("✓ The target answered")
    page.goto(
        f"{stack.admin.base_url}/ui/c/{client_id}/proxies/{proxy_id}/telemetry?interval=minute"
    )
    point = page.locator("figure[data-chart=Requests] circle[data-series='caller (proxy leg)']")
    reload_until(page, point)
    assert sum(float(v) for v in point.evaluate_all("els => els.map(e => e.dataset.value)")) >= 3
    expect(page.locator("figure[data-chart='Status codes'] rect[data-label='403']")).to_have_count(
        1
    )
    page.get_by_role("link", name="Metrics history").click()
    expect(page.locator("figure[data-chart='Requests per point']")).to_be_visible()
    assert TARGET_SECRET not in page.content()

    # Deleting asks first; the rule goes only once confirmed.
    page.goto(f"{stack.admin.base_url}/ui/c/{client_id}/proxies/{proxy_id}/rules")
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete this rule?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_text(rule_id)).to_be_visible()
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete rule").click()
    expect(page.get_by_text("Rule deleted.")).to_be_visible()
    expect(page.get_by_text("No rule yet")).to_be_visible()


def test_a_form_posted_without_its_csrf_token_is_refused(page: Page, stack):
    sign_in(page, stack.admin.base_url, new_user(stack, "csrf@example.test"))
    refused = page.request.post(f"{stack.admin.base_url}/ui/", form={"name": "Forged"})
    assert refused.status == 400
    assert "security token is missing" in refused.text()
    page.goto(f"{stack.admin.base_url}/ui/")
    expect(page.get_by_text("Forged")).to_have_count(0)


def test_the_user_role_cannot_reach_the_write_forms(page: Page, stack):
    owner = Api(stack.admin.base_url, new_user(stack, "owner-web@example.test"))
    client_id = owner.post("/api/clients", json={"clientName": "Read only"}).json()["clients"][0][
        "clientId"
    ]
    reader_token = new_user(stack, "reader@example.test")
    added = owner.post(
        f"/api/clients/{client_id}/members",
        json={"email": "reader@example.test", "roles": ["user"]},
    )
    assert added.status_code == 201, added.text
    sign_in(page, stack.admin.base_url, reader_token)
    page.goto(f"{stack.admin.base_url}/ui/c/{client_id}/credentials")
    expect(page.get_by_role("heading", name="Credentials")).to_be_visible()
    expect(page.get_by_role("button", name="New credential")).to_have_count(0)
    for form in ("credentials/new", "targets/new", "proxies/new"):
        response = page.goto(f"{stack.admin.base_url}/ui/c/{client_id}/{form}")
        assert response.status == 403, form
        expect(page.get_by_text("Your role in this client does not allow this.")).to_be_visible()
    page.goto(f"{stack.admin.base_url}/ui/c/{client_id}/members")
    expect(page.get_by_text("Only owners change members.")).to_be_visible()


def sign_in_with_password(page: Page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/ui/login")
    page.locator("#password-login").get_by_label("Email").fill(email)
    page.locator("#password-login").get_by_label("Password").fill(password)
    page.locator("#password-login").get_by_role("button", name="Sign in").click()


def test_sessions_are_listed_and_revoked_from_another_browser(browser, page: Page, stack):
    token = new_user(stack, "two-browsers@example.test")
    password = "correct horse battery"
    assert (
        Api(stack.admin.base_url, token)
        .put("/api/users/me/password", json={"password": password})
        .ok
    )
    sign_in(page, stack.admin.base_url, token)
    other_context = browser.new_context(user_agent="Other browser/1.0")
    other = other_context.new_page()
    other.set_default_timeout(WAIT_S * 1000)
    try:
        sign_in_with_password(other, stack.admin.base_url, "two-browsers@example.test", password)
        expect(other.get_by_role("heading", name="Your clients")).to_be_visible()

        page.goto(f"{stack.admin.base_url}/ui/account")
        rows = page.locator("#sessions tbody tr")
        expect(rows).to_have_count(2)
        expect(page.locator("#sessions tr.current")).to_contain_text("this session")
        expect(page.locator("#sessions tr.current")).to_contain_text("token")
        theirs = page.locator("#sessions tbody tr", has_text="Other browser/1.0")
        expect(theirs).to_contain_text("password")
        expect(theirs).to_contain_text("127.0.0.1")
        theirs.get_by_role("button", name="Revoke").click()
        expect(page.get_by_text("Session revoked: that browser is signed out.")).to_be_visible()
        expect(rows).to_have_count(1)

        other.goto(f"{stack.admin.base_url}/ui/account")
        expect(other.get_by_text("Your session has ended; sign in again.")).to_be_visible()
        expect(other.get_by_role("heading", name="Sign in to Portcullis")).to_be_visible()

        # Signed in again there, then signed out from here with "everywhere else".
        sign_in_with_password(other, stack.admin.base_url, "two-browsers@example.test", password)
        expect(other.get_by_role("heading", name="Your clients")).to_be_visible()
        page.reload()
        page.get_by_role("button", name="Sign out everywhere else").click()
        expect(page.get_by_text("1 other session ended")).to_be_visible()
        other.reload()
        expect(other.get_by_role("heading", name="Sign in to Portcullis")).to_be_visible()
        page.goto(f"{stack.admin.base_url}/ui/account")
        expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    finally:
        other_context.close()


def test_the_sign_in_page_says_when_sign_ins_are_locked(page: Page, tmp_path):
    admin = start_admin(tmp_path / "lockout", PORTCULLIS_SIGN_IN_MAX_FAILURES="3")
    try:
        token = create_user(admin, "locked@example.test").token
        password = "correct horse battery"
        assert (
            Api(admin.base_url, token).put("/api/users/me/password", json={"password": password}).ok
        )
        for attempt in range(2):
            sign_in_with_password(page, admin.base_url, "locked@example.test", f"wrong {attempt}")
            expect(page.get_by_role("alert")).to_contain_text("Email or password is wrong")
        locked = "Too many failed sign-ins; try again in 10 minutes"
        sign_in_with_password(page, admin.base_url, "locked@example.test", "wrong again")
        expect(page.get_by_role("alert")).to_have_text(locked)

        page.goto(f"{admin.base_url}/ui/login")
        page.locator("#password-login").get_by_label("Email").fill("locked@example.test")
        page.locator("#password-login").get_by_label("Password").fill(password)
        with page.expect_response(
            lambda r: r.url.endswith("/ui/login") and r.request.method == "POST"
        ) as answer:
            page.locator("#password-login").get_by_role("button", name="Sign in").click()
        assert answer.value.status == 429
        assert 0 < int(answer.value.headers["retry-after"]) <= 600
        expect(page.get_by_role("alert")).to_have_text(locked)
        expect(page.get_by_role("heading", name="Sign in to Portcullis")).to_be_visible()
    finally:
        admin.stop()


def test_adding_a_member_reads_the_same_for_unknown_emails(page: Page, stack):
    token = new_user(stack, "member-owner@example.test")
    new_user(stack, "has-account@example.test")
    owner = Api(stack.admin.base_url, token)
    client_id = owner.post("/api/clients", json={"clientName": "Team"}).json()["clients"][0][
        "clientId"
    ]
    sign_in(page, stack.admin.base_url, token)
    shown = []
    for email in ("has-account@example.test", "no-account@example.test"):
        page.goto(f"{stack.admin.base_url}/ui/c/{client_id}/members")
        page.get_by_label("Email of their Portcullis account").fill(email)
        page.get_by_role("button", name="Add member").click()
        shown.append(page.locator("p.flash").inner_text())
    assert shown[0] == shown[1] and "If an account uses that email" in shown[0]
    members = page.locator("main table")
    expect(members).to_contain_text("has-account@example.test")
    expect(members).not_to_contain_text("no-account@example.test")
