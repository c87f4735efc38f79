"""A person's pool account on the web, and the lease list, in headless Chromium.

One story: a person creates a `pp_` key on their account page (shown once, with a copy
button; gone after a reload, the key still works against `/pool`), has no credits (the
API's 402), a platform admin grants credits from the Pool section's lease list (bad
amounts and unknown e-mails refused next to their fields), the person sees the balance and
the transaction, acquires a proxy through the pool API, sees the lease on the account page
and releases it there (the proxy is free again; the credit is not refunded), revokes the
key (the API refuses it at once), and reads only their own leases, without the grant form
(a forged grant is refused). The platform admin sees everyone's leases with e-mails.

The session's real admin process over the real store (SQLite or PostgreSQL); the proxies
the lease picks are written to the store as test data, never due for a check.
"""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Browser, expect
from sqlalchemy import select

from models.pool import PoolCreditTransaction, PoolProxy
from models.store import make_session_factory
from tests.pool_support import PoolApi, assert_pool_error, insert_proxies, proxy_row
from tests.support import create_user
from tests.web_support import Browser as Client
from tests.web_support import signed_in_page

KEY = re.compile(r"pp_[A-Za-z0-9]{48}")


def test_a_person_keys_credits_and_leases_on_the_web(browser: Browser, admin_server):
    base = admin_server.base_url
    tag = uuid.uuid4().hex[:8]
    person = create_user(admin_server, f"pool.person.{tag}@example.test")
    boss = create_user(admin_server, f"pool.boss.{tag}@example.test", platform_admin=True)
    country = "XE"  # only this test's proxies are in this country
    [proxy] = insert_proxies(admin_server.database_url, [
        proxy_row(host=f"127.0.7.{n}", port=8080, status="active", anonymity="elite",
                  score=0.9, country=country, exit_ip=f"127.0.7.{n}")
        for n in (1,)
    ])  # fmt: skip

    # A new key: shown once with a copy button; after a reload only its prefix.
    page = signed_in_page(browser, base, person.token)
    page.goto(f"{base}/ui/account")
    pool_part = page.locator("#pool-key-form")
    expect(page.get_by_text("No pool keys yet.")).to_be_visible()
    expect(page.locator("#pool-balance")).to_have_text("0")
    pool_part.get_by_label("Label").fill("laptop")
    pool_part.get_by_role("button", name="Create a pool key").click()
    expect(page.locator("#new-pool-key-box")).to_contain_text("not shown again")
    key = page.locator("#new-pool-key").inner_text().strip()
    assert KEY.fullmatch(key), key
    expect(page.get_by_role("button", name="Copy key")).to_be_visible()
    page.goto(f"{base}/ui/account")
    assert key not in page.content()
    row = page.locator("#pool-keys tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("laptop")
    expect(row).to_contain_text(key[:8])
    pool = PoolApi(base, key)
    assert pool.get("/account").status_code == 200
    refused = pool.request("POST", "/proxies/acquire", json={"country": country})
    details = assert_pool_error(refused, 402, "INSUFFICIENT_CREDITS")
    assert refused.json()["error"]["message"] == (
        "You need at least 1 credit to acquire a proxy. Current balance: 0."
    ), details

    # A platform admin grants credits from the lease list; bad input stays next to its field.
    admin_page = signed_in_page(browser, base, boss.token)
    admin_page.locator("#nav-pool").click()
    admin_page.locator("nav[aria-label=Pool]").get_by_role("link", name="Leases").click()
    grant = admin_page.locator("#grant-form")
    grant.get_by_label("E-mail").fill(f"nobody.{tag}@example.test")
    grant.get_by_label("Credits").fill("5")
    grant.get_by_role("button", name="Add credits").click()
    expect(grant.locator(".has-error")).to_contain_text("No Portcullis user has this e-mail.")
    for bad in ("0", "1000000001"):
        grant.get_by_label("E-mail").fill(person.email)
        grant.get_by_label("Credits").fill(bad)
        grant.get_by_role("button", name="Add credits").click()
        expect(
            grant.locator(".has-error", has=admin_page.locator("#grant-amount"))
        ).to_contain_text("amount")
    grant.get_by_label("Credits").fill("5")
    grant.get_by_label("Type").select_option("purchase")
    grant.get_by_label("Description").fill(f"welcome {tag}")
    grant.get_by_role("button", name="Add credits").click()
    expect(admin_page.get_by_role("status")).to_contain_text(
        f"5 credits (purchase) added for {person.email}"
    )
    assert _transactions(admin_server, person.id) == [(5, "purchase", f"welcome {tag}", boss.id)]

    # The person sees the balance and the transaction; acquires through the API.
    page.goto(f"{base}/ui/account")
    expect(page.locator("#pool-balance")).to_have_text("5")
    expect(page.locator("#pool-transactions tbody tr").first).to_contain_text(f"welcome {tag}")
    expect(page.get_by_text("You hold no proxy now.")).to_be_visible()
    acquired = pool.request("POST", "/proxies/acquire", json={"country": country})
    assert acquired.status_code == 200, acquired.text
    lease_id = acquired.json()["lease_id"]
    assert acquired.json()["credits_remaining"] == 4
    page.reload()
    lease_row = page.locator(f'#pool-active-leases tr[data-lease="{lease_id}"]')
    expect(lease_row).to_contain_text("127.0.7.1:8080")
    expect(page.locator("#pool-balance")).to_have_text("4")
    lease_row.get_by_role("button", name="Release").click()
    expect(page.get_by_role("status")).to_contain_text("Lease released")
    expect(page.locator("#pool-active-leases")).to_have_count(0)
    expect(page.locator("#pool-balance")).to_have_text("4")  # no refund
    assert _lease_holder(admin_server, proxy["id"]) is None  # the proxy is free again
    again = pool.request("POST", "/proxies/acquire", json={"country": country})
    assert again.status_code == 200, again.text
    second = again.json()["lease_id"]

    # The person's lease list: their own leases only, no grant form.
    page.locator("#nav-pool").click()
    page.locator("nav[aria-label=Pool]").get_by_role("link", name="Leases").click()
    mine = page.locator("#pool-leases tbody tr")
    expect(mine).to_have_count(2)
    expect(page.locator(f'tr[data-lease="{lease_id}"] .state')).to_contain_text("released")
    expect(page.locator(f'tr[data-lease="{second}"] .state')).to_contain_text("active")
    expect(page.locator("#grant-form")).to_have_count(0)
    page.locator(f'tr[data-lease="{second}"]').get_by_role("button", name="Release").click()
    expect(page.get_by_role("status")).to_contain_text("Lease released")
    expect(page.locator(f'tr[data-lease="{second}"] .state')).to_contain_text("released")

    # Revoke the key (a confirmation first): the pool API refuses it at once.
    page.goto(f"{base}/ui/account")
    key_id = page.locator("#pool-keys tbody tr").get_attribute("data-key")
    page.locator("#pool-keys tbody tr").get_by_role("link", name="Revoke").click()
    expect(page.get_by_role("heading", name=re.compile("^Revoke the pool key"))).to_be_visible()
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    expect(page.locator("#pool-keys tbody tr")).to_contain_text("revoked")
    assert_pool_error(pool.get("/account"), 401, "UNAUTHORIZED")

    # The platform admin sees everyone's leases, with the person's e-mail.
    admin_page.reload()
    theirs = admin_page.locator(f'tr[data-lease="{lease_id}"]')
    expect(theirs).to_contain_text(person.email)
    expect(theirs.get_by_role("button", name="Release")).to_have_count(0)

    assert admin_page.goto(f"{base}/ui/pool/leases?cursor=not-a-cursor").status == 200
    expect(admin_page.get_by_role("alert")).to_contain_text("cursor")
    expect(admin_page.locator("#pool-leases")).to_have_count(0)
    for path in ("/ui/pool/leases", f"/ui/account/pool-keys/{key_id}/revoke"):
        answer = Client(base).get(path)  # signed out: the sign-in page
        assert answer.status_code == 302 and "/ui/login" in answer.headers["Location"], path

    # Forged POSTs with a valid CSRF token of the person's session change nothing.
    forger = Client(base)
    assert forger.sign_in_with_token(person.token).status_code == 302
    token = forger.csrf("/ui/account")
    answer = forger.post("/ui/pool/leases", {
        "grant-csrf_token": token, "grant-email": person.email, "grant-amount": "100",
        "grant-tx_type": "grant", "grant-description": "forged",
    })  # fmt: skip
    assert answer.status_code == 403, answer.status_code
    stolen = forger.post(f"/ui/account/leases/{lease_id}/release", {"csrf_token": token})
    assert stolen.status_code == 302  # the person's own (already released) lease: no change
    boss_web = Client(base)
    assert boss_web.sign_in_with_token(boss.token).status_code == 302
    other = boss_web.post(
        f"/ui/account/leases/{second}/release", {"csrf_token": boss_web.csrf("/ui/account")}
    )
    assert other.status_code == 302
    assert "You have no lease with this id" in boss_web.get("/ui/account").text
    for path in (f"/ui/account/pool-keys/{key_id}/revoke", "/ui/account/pool-keys/nope/revoke"):
        assert boss_web.get(path).status_code == 404, path  # someone else's key, or none
    assert _transactions(admin_server, person.id)[0][:2] == (5, "purchase")
    assert len(_transactions(admin_server, person.id)) == 3  # the grant and two acquires


def _transactions(admin, user_id: str) -> list[tuple]:
    with make_session_factory(admin.engine)() as session:
        rows = session.scalars(
            select(PoolCreditTransaction)
            .where(PoolCreditTransaction.user_id == user_id)
            .order_by(PoolCreditTransaction.id)
        ).all()
        return [(t.amount, t.tx_type, t.description, t.created_by) for t in rows]


def _lease_holder(admin, proxy_id: str) -> str | None:
    with make_session_factory(admin.engine)() as session:
        return session.get(PoolProxy, proxy_id).lease_id
