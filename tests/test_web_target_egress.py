"""The target form's egress section and "Test through egress", in headless Chromium.

One story: a fixed SOCKS5 proxy with a username and password set through the form, shown
masked; "Test through egress" reaches a real local upstream through that real local proxy
(which refuses anyone without the password); saving again keeps the hidden credentials;
bad input shows next to its field; switching to the pool and testing through a real pool
member. Real admin (allowed to use loopback targets and proxies), real store, nothing mocked.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.pool_proxies import ProxyFarm
from tests.pool_support import insert_proxies, proxy_row
from tests.support import Api, create_user, new_client, start_admin
from tests.web_support import sign_in

LOOPBACK = "127.0.0.0/8"
PROXY_USER = "egress-web-user"
PROXY_PASSWORD = "egress-web-pw-5e1b"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, upstream):
    with ProxyFarm() as farm:
        admin = start_admin(
            tmp_path_factory.mktemp("web-egress") / "admin",
            PORTCULLIS_ALLOW_TARGETS=LOOPBACK,
            PORTCULLIS_POOL_ALLOW_PROXIES=LOOPBACK,
            PORTCULLIS_POOL_JUDGE_URL="http://127.0.0.1:9/no-judge",
        )
        try:
            socks = farm.socks("fixed", "127.0.0.71", credentials=(PROXY_USER, PROXY_PASSWORD))
            member = farm.http("member", "elite", "127.0.0.72")
            yield admin, socks, member
        finally:
            admin.stop()


def _choose(page: Page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).select_option(label=option)


def _field_error(page: Page, label: str):
    return page.locator(".field.has-error", has=page.get_by_label(label, exact=True))


def _no_secret(page: Page) -> None:
    html = page.content()
    assert PROXY_PASSWORD not in html and PROXY_USER not in html


def test_a_target_egresses_through_a_fixed_proxy_then_the_pool(page: Page, stack, upstream):
    admin, socks, member = stack
    owner = create_user(admin, "egress-web@example.test")
    client_id = new_client(Api(admin.base_url, owner.token), "Egress web")
    sign_in(page, admin.base_url, owner.token)

    # A target at the local upstream, created directly (the default).
    page.goto(f"{admin.base_url}/ui/c/{client_id}/targets/new")
    page.get_by_label("Name", exact=True).fill("Echo")
    page.get_by_label("Base URL").fill(upstream.base_url + "/egress-web")
    page.get_by_label("Test path (for the Test button)").fill("/status/200")
    page.get_by_role("button", name="Create target").click()
    expect(page.get_by_text("Target Echo created")).to_be_visible()
    page.get_by_role("link", name="Echo").click()
    expect(page.locator("#egress-summary")).to_contain_text("directly")
    expect(page.get_by_role("button", name="Test through egress")).to_have_count(0)

    # Bad input shows next to its field, nothing is saved, and the credentials typed (in
    # their inputs or in the URL) are not written back into the page.
    _choose(page, "Requests leave", "Through a fixed proxy")
    page.get_by_label("Proxy URL").fill(f"socks5://{socks.host}")  # no port
    page.get_by_label("Proxy username").fill(PROXY_USER)
    page.get_by_label("Proxy password").fill(PROXY_PASSWORD)
    page.get_by_role("button", name="Save").click()
    expect(_field_error(page, "Proxy URL")).to_contain_text("port")
    _no_secret(page)
    page.get_by_label("Proxy URL").fill(
        f"socks5://{PROXY_USER}:{PROXY_PASSWORD}@{socks.host}:{socks.port}/path"
    )
    page.get_by_role("button", name="Save").click()
    expect(_field_error(page, "Proxy URL")).to_contain_text("path")
    expect(page.get_by_label("Proxy URL")).to_have_value(f"socks5://{socks.host}:{socks.port}/path")
    _no_secret(page)
    expect(page.locator("#egress-summary")).to_contain_text("directly")

    # The fixed proxy with its username and password: shown masked, never echoed back.
    page.get_by_label("Proxy URL").fill(f"socks5://{socks.host}:{socks.port}")
    page.get_by_label("Proxy username").fill(PROXY_USER)
    page.get_by_label("Proxy password").fill(PROXY_PASSWORD)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Target saved.")).to_be_visible()
    summary = page.locator("#egress-summary")
    expect(summary).to_contain_text(f"socks5://{socks.host}:{socks.port}")
    expect(summary).to_contain_text("saved username and password (hidden")
    expect(page.get_by_label("Proxy URL")).to_have_value(f"socks5://{socks.host}:{socks.port}")
    expect(page.get_by_label("Proxy username")).to_have_value("")
    expect(page.get_by_label("Proxy password")).to_have_value("")
    _no_secret(page)

    # Test through egress: reaches the upstream through the proxy (it refuses anyone without
    # the password, so "reachable" means the sealed credentials were used).
    before = len(upstream.received)
    page.get_by_role("button", name="Test through egress").click()
    result = page.locator("#egress-test-result")
    expect(result).to_contain_text("Reachable")
    expect(result).to_contain_text("status 200")
    expect(result).to_contain_text(f"via proxy socks5://{socks.host}:{socks.port}")
    assert any(r.path == "/egress-web/status/200" for r in upstream.received[before:])
    _no_secret(page)

    # Saving again with the credential inputs blank keeps them.
    page.get_by_label("Name", exact=True).fill("Echo again")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Target saved.")).to_be_visible()
    expect(page.locator("#egress-summary")).to_contain_text("saved username and password")
    page.get_by_role("button", name="Test through egress").click()
    expect(page.locator("#egress-test-result")).to_contain_text("Reachable")

    # Removing them: the proxy now refuses the test, and the page says so.
    page.get_by_label("Remove the saved username and password").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#egress-summary")).to_contain_text("without a username or password")
    page.get_by_role("button", name="Test through egress").click()
    expect(page.locator("#egress-test-result")).to_contain_text("Not reachable")

    # The pool: a bad filter first, then one that matches a real local member.
    _choose(page, "Requests leave", "Through the proxy pool")
    page.get_by_label("Country (two letters)").fill("NLD")
    page.get_by_role("button", name="Save").click()
    expect(_field_error(page, "Country (two letters)")).to_be_visible()
    [row] = insert_proxies(
        admin.database_url,
        [proxy_row(host=member.host, port=member.port, status="active", score=0.9, country="NL")],
    )
    page.get_by_label("Country (two letters)").fill("nl")
    _choose(page, "Rotation", "keep one proxy for some seconds")
    page.get_by_label("Seconds on one proxy (sticky)").fill("120")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Target saved.")).to_be_visible()
    summary = page.locator("#egress-summary")
    expect(summary).to_contain_text("proxy pool")
    expect(summary).to_contain_text("country NL")
    expect(summary).to_contain_text("one proxy kept for 120 s")
    page.get_by_role("button", name="Test through egress").click()
    result = page.locator("#egress-test-result")
    expect(result).to_contain_text("Reachable")
    expect(result).to_contain_text(re.compile(rf"via pool proxy {row['id']}"))
    _no_secret(page)
