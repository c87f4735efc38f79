"""The Pool section of the web admin in headless Chromium.

A platform admin adds a source served by a real HTTP server on 127.0.0.1 (the preview
shows the parser auto-detect picked and a sample before anything is saved), scrapes it
now and reads the counts, changes its schedule (a bad cron is refused next to the field),
filters and pages the proxies table with seed 003's parameters (a bad value gets the API's
message next to its field), opens a proxy's check history and deletes the source (its
proxies stay). A user who is not a platform admin reads every page without the changing
controls, and their forged POSTs (with a valid CSRF token) are refused and change nothing.

A real admin process over the real store (SQLite or PostgreSQL), Debian's Chromium driven
by Playwright. The proxies the table shows are written to the store as test data, due for
a check only far in the future (the admin's checkers leave them as written).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import User as StoredUser
from models.pool import PoolSource
from models.store import make_session_factory
from tests.pool_source_server import SourceServer
from tests.pool_support import (
    insert_checks,
    insert_proxies,
    minutes_ago,
    proxy_row,
    store_engine,
)
from tests.support import create_user, start_admin
from tests.web_support import Browser as Client
from tests.web_support import signed_in_page

NEVER_FIRES = "0 0 29 2 *"  # cron: 29 February (no scheduled scrape during the test)
PASSWORD = "s3cret-list-token"
# A messy plaintext list: comments, a duplicate, a bad line, a scheme, credentials, IPv6;
# loopback addresses only (the admin's checkers connect to them, and find them dead).
LIST = f"""# free proxies, updated hourly
127.0.9.1:8080
127.0.9.2:3128
127.0.9.2:3128
socks5://127.0.9.3:1080
http://user:{PASSWORD}@127.0.9.4:8000
not a proxy line
[::1]:8081
"""


@pytest.fixture(scope="module")
def lists() -> Iterator[SourceServer]:
    """A proxy-list server on 127.0.0.1: the messy list, and a page no parser reads."""
    with SourceServer() as server:
        server.serve("/list.txt", LIST)
        server.serve("/nothing.txt", "hello, nothing to see here\n")
        yield server


@pytest.fixture(scope="module")
def pool_admin(tmp_path_factory):
    """An admin whose pool may fetch sources from and check proxies on loopback."""
    admin = start_admin(
        tmp_path_factory.mktemp("pool-web-admin"),
        PORTCULLIS_POOL_ALLOW_SOURCES="127.0.0.0/8",
        PORTCULLIS_POOL_ALLOW_PROXIES="127.0.0.0/8",
    )
    yield admin
    admin.stop()


def store(admin) -> Session:
    """A session on the admin's store, for test data and for reading what the pages did."""
    return make_session_factory(store_engine(admin.database_url))()


def person(admin, email: str, platform_admin: bool) -> SimpleNamespace:
    made = create_user(admin, email)
    with store(admin) as session:
        session.execute(
            update(StoredUser).where(StoredUser.id == made.id).values(platform_admin=platform_admin)
        )
        session.commit()
    return SimpleNamespace(email=made.email, token=made.token)


def store_proxies(admin) -> dict[str, str]:
    """Test data: 6 graded proxies (2 socks5) and a check history for one; their ids by name."""
    checked = minutes_ago(5)
    rows = {
        "fast-http": ("127.0.5.1", "http", "active", "elite", 0.95, 120.0, 99.0),
        "slow-http": ("127.0.5.2", "http", "active", "anonymous", 0.60, 900.0, 80.0),
        "dead-http": ("127.0.5.3", "http", "dead", None, 0.05, None, 10.0),
        "best-socks": ("127.0.5.4", "socks5", "active", "elite", 0.90, 200.0, 97.5),
        "worst-socks": ("127.0.5.5", "socks5", "active", "transparent", 0.40, 450.0, 70.0),
        "new-https": ("127.0.5.6", "https", "unchecked", None, 0.0, None, None),
    }
    stored = insert_proxies(admin.database_url, [
        proxy_row(
            host=host, port=8000, protocol=protocol, status=status, anonymity=anonymity,
            score=score, avg_latency_ms=latency, uptime_pct=uptime, country="ZZ",
            exit_ip=host if status == "active" else None, tags={"name": name},
            last_checked_at=None if status == "unchecked" else checked,
        )
        for name, (host, protocol, status, anonymity, score, latency, uptime) in rows.items()
    ])  # fmt: skip
    ids = {row["tags"]["name"]: row["id"] for row in stored}
    insert_checks(admin.database_url, ids["best-socks"], [
        {"checker_name": "tcp_connect", "stage": 1, "passed": True, "latency_ms": 12.5,
         "detail": "tcp_connect OK", "created_at": minutes_ago(30)},
        {"checker_name": "socks_anonymity", "stage": 2, "passed": True, "latency_ms": 12.5,
         "detail": "socks_anonymity OK", "created_at": minutes_ago(29)},
        {"checker_name": "tcp_connect", "stage": 1, "passed": False, "latency_ms": None,
         "detail": "connection refused", "created_at": minutes_ago(28)},
    ])  # fmt: skip
    return ids


def test_a_platform_admin_adds_previews_scrapes_and_browses_the_pool(
    browser: Browser, pool_admin, lists
):
    base = pool_admin.base_url
    boss = person(pool_admin, "pool.boss@example.test", platform_admin=True)
    page = signed_in_page(browser, base, boss.token)
    page.locator("#nav-pool").click()
    expect(page.get_by_role("heading", name="Proxy pool")).to_be_visible()
    for chart in ("By status", "By protocol", "By anonymity"):
        expect(page.locator(f'figure[data-chart="{chart}"]')).to_be_visible()

    # Add a source: the preview shows what auto-detect picked, before anything is saved.
    page.locator("nav[aria-label=Pool]").get_by_role("link", name="Sources").click()
    expect(page.get_by_text("No sources yet.")).to_be_visible()
    page.get_by_role("link", name="Add a source").click()
    form = page.locator("#source-form")
    form.get_by_label("List URL").fill(f"{lists.base_url}/nothing.txt")
    form.get_by_role("button", name="Preview").click()
    expect(form.locator(".has-error").get_by_role("alert")).to_be_visible()  # no parser fits
    expect(page.locator("#source-preview")).to_have_count(0)
    url = f"{lists.base_url}/list.txt".replace("http://", f"http://lists:{PASSWORD}@")
    form.get_by_label("List URL").fill(url)
    form.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-parser")).to_have_text("plaintext")
    expect(page.locator("#preview-count")).to_have_text("5")  # 6 good lines, one a duplicate
    expect(page.locator("#preview-sample tbody tr")).to_have_count(5)
    expect(page.locator("#preview-sample")).to_contain_text("socks5")
    expect(form.get_by_label("Parser")).to_have_value("plaintext")
    assert not _sources(pool_admin), "a preview saves nothing"
    form.get_by_label("Schedule").fill(NEVER_FIRES)
    form.get_by_role("button", name="Save source").click()
    expect(page.get_by_role("status")).to_contain_text("Source added (parser plaintext)")
    heading = page.get_by_role("heading", name=re.compile("^Source "))
    expect(heading).to_contain_text("lists:***@127.0.0.1")
    assert PASSWORD not in page.content()

    # Scrape now: the counts are the list's, and the source's page keeps them.
    page.get_by_role("button", name="Scrape now").click()
    expect(page.get_by_role("status")).to_contain_text("Scraped: 5 discovered, 5 new, 0 updated")
    expect(page.locator("#source-result")).to_contain_text("5 discovered, 5 new, 0 updated")
    lists.serve("/list.txt", "gone", status=404)  # a failed scrape says why, on the page
    page.get_by_role("button", name="Scrape now").click()
    expect(page.get_by_role("status")).to_contain_text("Scrape failed: ")
    expect(page.locator("#source-result .bad")).to_contain_text("404")
    assert PASSWORD not in page.content()
    lists.serve("/list.txt", LIST)
    page.get_by_role("button", name="Scrape now").click()
    expect(page.get_by_role("status")).to_contain_text("Scraped: 5 discovered, 0 new, 5 updated")

    # The schedule: a bad cron is refused next to its field; then the source is paused.
    schedule = page.locator("#schedule-form")
    schedule.get_by_label("Schedule").fill("every hour")
    schedule.get_by_role("button", name="Save").click()
    expect(schedule.locator(".has-error")).to_contain_text("cron_schedule")
    schedule.get_by_label("Schedule").fill(NEVER_FIRES)
    schedule.get_by_label("Active").uncheck()
    schedule.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Source saved.")
    expect(page.locator("#source-settings")).to_contain_text("inactive")
    page.get_by_role("link", name="← Sources").click()
    row = page.locator("#pool-sources tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("lists:***@")
    expect(row.locator(".result")).to_contain_text("5 discovered, 0 new, 5 updated")
    assert PASSWORD not in page.content()

    # The proxies table: seed 003's filters and sorts, cursor paging, the API's refusals.
    ids = store_proxies(pool_admin)
    page.locator("nav[aria-label=Pool]").get_by_role("link", name="Proxies").click()
    expect(page.locator("#proxy-count")).to_contain_text("11 proxies")  # 5 scraped + 6 stored
    expect(page.locator("#pool-proxies")).to_contain_text("127.0.9.4:8000 (with credentials)")
    expect(page.locator("#pool-proxies")).to_contain_text("[::1]:8081")
    assert PASSWORD not in page.content()  # the list's credentials are never shown
    filters = page.locator("#proxy-filters")
    filters.get_by_label("Protocol").select_option("socks5")
    filters.get_by_label("Country").fill("ZZ")
    filters.get_by_label("Sort by").select_option("score")
    filters.get_by_label("Order").select_option("asc")
    filters.get_by_role("button", name="Show").click()
    rows = page.locator("#pool-proxies tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-proxy", ids["worst-socks"])
    expect(rows.nth(1)).to_have_attribute("data-proxy", ids["best-socks"])
    expect(filters.get_by_label("Protocol")).to_have_value("socks5")  # the form keeps them

    filters.get_by_label("Protocol").select_option("")
    filters.get_by_label("Status").select_option("active")
    filters.get_by_label("Min score").fill("0.5")
    filters.get_by_label("Sort by").select_option("latency")
    filters.get_by_label("Per page").fill("2")
    filters.get_by_role("button", name="Show").click()
    expect(page.locator("#proxy-count")).to_contain_text("3 proxies")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-proxy", ids["fast-http"])
    expect(rows.nth(1)).to_have_attribute("data-proxy", ids["best-socks"])
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_have_attribute("data-proxy", ids["slow-http"])
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)

    for bad in ("min_score=2", "limit=201", "status=sleeping", "cursor=not-a-cursor"):
        name = bad.split("=")[0]
        answer = page.goto(f"{base}/ui/pool/proxies?{bad}")
        assert answer.status == 200, (bad, answer.status)
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(name)
        if name != "cursor":  # the message stands next to the field it names
            expect(page.locator(".has-error", has=page.locator(f"#f-{name}"))).to_have_count(1)
        expect(page.locator("#pool-proxies")).to_have_count(0)
        expect(page.locator("#proxy-count")).to_have_count(0)  # no "0 proxies" after a refusal

    # A proxy's page: its grades and check history, newest first.
    page.goto(f"{base}/ui/pool/proxies?protocol=socks5")
    page.locator(f'tr[data-proxy="{ids["best-socks"]}"]').get_by_role("link").click()
    expect(page.locator("#proxy-status")).to_have_text("active")
    expect(page.locator("#proxy-score")).to_have_text("0.9000")
    history = page.locator("#proxy-checks tbody tr")
    expect(history).to_have_count(3)
    expect(history.nth(0)).to_contain_text("failed")
    expect(history.nth(0)).to_contain_text("connection refused")
    expect(history.nth(1)).to_contain_text("socks_anonymity")
    assert page.goto(f"{base}/ui/pool/proxies/no-such-proxy").status == 404

    # The overview counts what the store holds.
    page.locator("#nav-pool").click()
    expect(page.locator("#stat-total")).to_have_text("11")
    socks_bar = page.locator('figure[data-chart="By protocol"] rect[data-label="socks5"]')
    expect(socks_bar).to_have_attribute("data-value", "3")

    # Delete the source (the project's confirm page): its proxies stay in the pool.
    source_id = _sources(pool_admin)[0]
    page.goto(f"{base}/ui/pool/sources/{source_id}")
    page.get_by_role("link", name="Delete").click()
    confirm = page.get_by_role("heading", name=re.compile("^Delete the source"))
    expect(confirm).to_contain_text("***")
    page.get_by_role("button", name="Delete source").click()
    expect(page.get_by_role("status")).to_contain_text("deleted; its proxies stay")
    expect(page.get_by_text("No sources yet.")).to_be_visible()
    assert _sources(pool_admin) == []
    page.goto(f"{base}/ui/pool/proxies")
    expect(page.locator("#proxy-count")).to_contain_text("11 proxies")


def _sources(admin) -> list[str]:
    with store(admin) as session:
        return list(session.scalars(select(PoolSource.id)))


def test_a_user_who_is_not_a_platform_admin_reads_the_pool_but_changes_nothing(
    browser: Browser, pool_admin, lists
):
    with store(pool_admin) as session:
        source = PoolSource(
            url=f"{lists.base_url}/list.txt", parser_name="plaintext", cron_schedule=NEVER_FIRES,
            default_protocol="http", is_active=True,
        )  # fmt: skip
        session.add(source)
        session.commit()
        source_id = source.id
    try:
        reads_but_cannot_change(browser, pool_admin, lists, source_id)
    finally:  # the other story starts from an empty list of sources
        with store(pool_admin) as session:
            session.delete(session.get(PoolSource, source_id))
            session.commit()


def reads_but_cannot_change(browser: Browser, pool_admin, lists, source_id: str) -> None:
    base = pool_admin.base_url
    reader = person(pool_admin, "pool.reader@example.test", platform_admin=False)
    page = signed_in_page(browser, base, reader.token)
    page.locator("#nav-pool").click()
    expect(page.get_by_role("heading", name="Proxy pool")).to_be_visible()
    page.locator("nav[aria-label=Pool]").get_by_role("link", name="Sources").click()
    expect(page.locator(f'tr[data-source="{source_id}"]')).to_be_visible()
    expect(page.get_by_role("link", name="Add a source")).to_have_count(0)
    page.locator(f'tr[data-source="{source_id}"]').get_by_role("link").click()
    expect(page.locator("#source-settings")).to_contain_text("plaintext")
    expect(page.get_by_role("button", name="Scrape now")).to_have_count(0)
    expect(page.locator("#schedule-form")).to_have_count(0)
    expect(page.get_by_role("link", name="Delete")).to_have_count(0)
    page.locator("nav[aria-label=Pool]").get_by_role("link", name="Proxies").click()
    expect(page.get_by_role("heading", name="Proxies")).to_be_visible()
    assert page.goto(f"{base}/ui/pool/sources/new").status == 403

    # Signed out, every Pool page sends the browser to the sign-in page.
    stranger = Client(base)
    for path in ("/ui/pool", "/ui/pool/sources", f"/ui/pool/sources/{source_id}",
                 "/ui/pool/proxies"):  # fmt: skip
        answer = stranger.get(path)
        assert answer.status_code == 302 and "/ui/login" in answer.headers["Location"], path

    # Forged POSTs, each with a valid CSRF token of this user's session: all refused.
    forger = Client(base)
    assert forger.sign_in_with_token(reader.token).status_code == 302
    token = forger.csrf("/ui/account")  # one token per session, valid for every form
    forged = {
        "/ui/pool/sources/new": {"url": f"{lists.base_url}/list.txt", "cron_schedule": "* * * * *",
                                 "default_protocol": "http", "action": "save"},
        f"/ui/pool/sources/{source_id}": {"cron_schedule": "* * * * *",
                                          "default_protocol": "socks5"},
        f"/ui/pool/sources/{source_id}/scrape": {},
        f"/ui/pool/sources/{source_id}/delete": {},
    }  # fmt: skip
    for path, fields in forged.items():
        answer = forger.post(path, {"csrf_token": token, **fields})
        assert answer.status_code == 403, (path, answer.status_code)
        assert "Only platform admins change pool sources." in answer.text
    with store(pool_admin) as session:
        stored = session.get(PoolSource, source_id)
        assert (stored.cron_schedule, stored.default_protocol, stored.is_active) == (
            NEVER_FIRES, "http", True,
        )  # fmt: skip
        assert stored.last_scraped_at is None
        assert session.scalars(select(PoolSource.id)).all() == [source_id]  # none added
