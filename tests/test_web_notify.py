"""Notifications and notifiers in headless Chromium: the header bell counts real
notifications and drops as they are opened; a notifier made in the form shows its signing
secret once, its "Send test event" reaches a real receiver on 127.0.0.1 whose signature
checks out, and its delivery log and health say what happened.

A real admin process (its delivery worker running) over the real store (SQLite or
PostgreSQL), a real HTTP receiver on 127.0.0.1 (tests/upstream.py), Debian's Chromium
driven by Playwright. Nothing is mocked.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from playwright.sync_api import Browser, Page, expect
from standardwebhooks import Webhook

from tests.support import Api, add_member, create_user, new_client, start_admin
from tests.upstream import RecordingUpstream
from tests.web_support import reload_until, signed_in_page


@pytest.fixture(scope="module")
def signals(tmp_path_factory):
    """An admin that may deliver to 127.0.0.1 and retries fast, and a receiver."""
    with RecordingUpstream() as receiver:
        admin = start_admin(
            tmp_path_factory.mktemp("notify-admin"),
            PORTCULLIS_ALLOW_TARGETS="127.0.0.1",
            PORTCULLIS_NOTIFY_INTERVAL_MS="200",
            PORTCULLIS_NOTIFY_RETRY_BASE_MS="100",
        )
        yield SimpleNamespace(admin=admin, receiver=receiver)
        admin.stop()


def user(signals, email: str, platform_admin: bool = False) -> SimpleNamespace:
    made = create_user(signals.admin, email, platform_admin=platform_admin)
    api = Api(signals.admin.base_url, made.token)
    return SimpleNamespace(id=made.id, email=email, token=made.token, api=api)


def bell(page: Page, unread: int):
    """The header bell, expected to say `unread`."""
    link = page.locator("#bell")
    expect(link).to_have_attribute("aria-label", f"Notifications: {unread} unread")
    if unread:
        expect(page.locator("#bell-count")).to_have_text(str(unread))
    else:
        expect(page.locator("#bell-count")).to_have_count(0)
    return link


def test_the_bell_counts_system_and_client_notifications_and_opening_one_reads_it(
    browser: Browser, signals
):
    base = signals.admin.base_url
    boss = user(signals, "platform.boss@example.test", platform_admin=True)
    owner = user(signals, "bell.owner@example.test")
    member = user(signals, "bell.member@example.test")
    client_id = new_client(owner.api, "Bell Co")
    add_member(owner.api, client_id, SimpleNamespace(email=member.email), "user")
    before = member.api.get("/api/me/notifications/unread").json()["total"]

    # A system notification, posted through the API by a platform admin.
    posted = boss.api.post(
        "/api/notifications/system",
        json={"title": "Maintenance at noon", "message": "The admin restarts at 12:00 UTC."},
    )
    assert posted.status_code == 201, posted.text
    # A client notification from a real event: a notifier's test event.
    made = owner.api.post(
        f"/api/clients/{client_id}/notifiers",
        json={
            "name": "hook",
            "type": "webhook",
            "subscribesTo": ["*"],
            "enabled": True,
            "url": f"{signals.receiver.base_url}/hooks/bell",
        },
    )
    assert made.status_code == 201, made.text
    notifier_id = made.json()["notifiers"][0]["notifierId"]
    tested = owner.api.post(f"/api/clients/{client_id}/notifiers/{notifier_id}/test")
    assert tested.status_code == 202, tested.text

    page = signed_in_page(browser, base, member.token)
    bell(page, before + 2).click()
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    tabs = page.locator("#notification-tabs")
    expect(tabs.get_by_role("link", name=re.compile(r"^System \(\d+ unread\)"))).to_be_visible()
    expect(tabs.get_by_role("link", name="Bell Co (1 unread)")).to_be_visible()

    # The system notification: marked unread, opened, then read; the bell drops by one.
    page.locator("#notification-tabs").get_by_role("link", name=re.compile("^System")).click()
    row = page.locator("#notifications tr", has_text="Maintenance at noon")
    expect(row.locator(".unread-mark")).to_have_text("unread")
    row.get_by_role("link", name="Maintenance at noon").click()
    expect(page.locator("#notification-title")).to_have_text("Maintenance at noon")
    expect(page.locator("#notification-message")).to_have_text("The admin restarts at 12:00 UTC.")
    bell(page, before + 1)
    page.get_by_role("link", name="← All notifications").click()
    row = page.locator("#notifications tr", has_text="Maintenance at noon")
    expect(row).to_contain_text("read")
    expect(row.locator(".unread-mark")).to_have_count(0)

    # The client's notification: opened by this member, it stays unread for the owner.
    page.locator("#notification-tabs").get_by_role("link", name="Bell Co (1 unread)").click()
    page.locator("#notifications tbody tr").first.get_by_role("link").click()
    expect(page.locator("main")).to_contain_text("notifier.test")
    expect(page.locator("nav.sections")).to_contain_text("Bell Co")
    bell(page, before)
    owner_unread = owner.api.get("/api/me/notifications/unread").json()["unread"]["clients"]
    assert owner_unread.get(client_id) == 1
    # Another client's notification is not reachable by this member (404, nothing shown).
    other_client = new_client(owner.api, "Not Yours")
    foreign = owner.api.post(
        f"/api/clients/{other_client}/notifiers",
        json={"name": "x", "type": "email", "subscribesTo": ["*"], "recipients": ["a@b.test"]},
    )
    assert foreign.status_code == 201, foreign.text
    owner.api.post(
        f"/api/clients/{other_client}/notifiers/{foreign.json()['notifiers'][0]['notifierId']}/test"
    )
    listed = owner.api.get(f"/api/clients/{other_client}/notifications").json()["notifications"]
    answer = page.goto(f"{base}/ui/c/{other_client}/notifications/{listed[0]['notificationId']}")
    assert answer.status == 404
    assert page.goto(f"{base}/ui/notifications?tab={other_client}").status == 404

    # The platform admin posts one from the web; the member's bell counts it.
    boss_page = signed_in_page(browser, base, boss.token)
    boss_page.goto(f"{base}/ui/notifications?tab=system")
    form = boss_page.locator("#system-notification-form")
    form.get_by_label("Title").fill("Welcome aboard")
    form.get_by_label("Message").fill("Notifiers are here.")
    form.get_by_role("button", name="Post to everyone").click()
    expect(boss_page.get_by_role("status")).to_contain_text("System notification posted")
    expect(boss_page.locator("#notifications")).to_contain_text("Welcome aboard")
    page.goto(f"{base}/ui/notifications")
    bell(page, before + 1)
    expect(page.locator("#system-notification-form")).to_have_count(0)  # not a platform admin

    # Paging: the newest 20 first, older ones one click away, a bad token said plainly.
    for n in range(20):
        body = {"title": f"Bulletin {n}", "message": "-"}
        assert boss.api.post("/api/notifications/system", json=body).status_code == 201
    page.goto(f"{base}/ui/notifications?tab=system")
    rows = page.locator("#notifications tbody tr")
    expect(rows).to_have_count(20)
    expect(rows.first).to_contain_text("Bulletin 19")
    page.get_by_role("link", name="Older notifications").click()
    expect(rows).to_have_count(2)
    expect(rows.last).to_contain_text("Maintenance at noon")
    expect(page.get_by_role("link", name="Older notifications")).to_have_count(0)
    page.get_by_role("link", name="Newest notifications").click()
    expect(rows.first).to_contain_text("Bulletin 19")
    page.goto(f"{base}/ui/notifications?tab=system&next=not-a-token")
    expect(page.get_by_role("alert")).to_contain_text("nextToken")


def test_a_notifier_made_in_the_form_delivers_a_signed_test_event_and_reports_health(
    browser: Browser, signals
):
    base = signals.admin.base_url
    owner = user(signals, "notifier.owner@example.test")
    reader = user(signals, "notifier.reader@example.test")
    client_id = new_client(owner.api, "Hooks Co")
    add_member(owner.api, client_id, SimpleNamespace(email=reader.email), "user")
    page = signed_in_page(browser, base, owner.token)
    page.goto(f"{base}/ui/c/{client_id}/")
    page.locator("nav.sections").get_by_role("link", name="Notifiers", exact=True).click()
    expect(page.get_by_text("No notifiers yet")).to_be_visible()
    page.get_by_role("link", name="New notifier").click()

    form = page.locator("#notifier-form")
    form.get_by_label("Name").fill("Ops hook")
    form.get_by_label("Type").select_option("webhook")
    # Only the chosen type's destination shows (the page's small script).
    recipients = "Email recipients (one per line or separated by commas)"
    expect(form.get_by_label(recipients)).to_be_hidden()
    expect(form.get_by_label("Webhook URL (http or https)")).to_be_visible()
    # Refused input, said next to the field: an unknown event pattern and a non-HTTP URL.
    form.get_by_label("Webhook URL (http or https)").fill("ftp://127.0.0.1/hook")
    form.get_by_label(re.compile("^More patterns")).fill("no.such.event")
    form.get_by_role("button", name="Create notifier").click()
    patterns_field = form.locator(".field", has=page.get_by_label(re.compile("^More patterns")))
    expect(patterns_field.locator(".error")).to_contain_text("no.such.event")
    url_field = form.locator(".field", has=page.get_by_label("Webhook URL (http or https)"))
    expect(url_field.locator(".error")).not_to_have_count(0)
    assert owner.api.get(f"/api/clients/{client_id}/notifiers").json()["notifiers"] == []

    hook_url = f"{signals.receiver.base_url}/hooks/form"
    form.get_by_label("Webhook URL (http or https)").fill(hook_url)
    form.get_by_label(re.compile("^More patterns")).fill("credits.*")
    form.locator("#event-choices").get_by_label("notifier.test").check()
    form.get_by_role("button", name="Create notifier").click()
    # The signing secret, once.
    secret = page.locator("#signing-secret").inner_text().strip()
    assert secret.startswith("whsec_")
    page.get_by_role("link", name="Go to the notifier").click()
    assert secret not in page.content()
    expect(page.locator("#notifier-health")).to_contain_text("healthy")
    stored = owner.api.get(f"/api/clients/{client_id}/notifiers").json()["notifiers"][0]
    assert stored["subscribesTo"] == ["notifier.test", "credits.*"]
    assert "signingSecret" not in stored

    # Send test event → the receiver gets it, signed with the secret shown; the log says so.
    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_role("heading", name="Delivery log: Ops hook")).to_be_visible()
    delivered = page.locator("#deliveries tr", has_text="delivered")
    reload_until(page, delivered)
    expect(delivered.first).to_contain_text("notifier.test")
    expect(delivered.first).to_contain_text("200")
    hits = [r for r in signals.receiver.received if r.path == "/hooks/form"]
    assert len(hits) == 1
    headers = {k.lower(): v for k, v in hits[0].headers}
    payload = Webhook(secret).verify(hits[0].body, headers)
    assert payload["type"] == "notifier.test" and payload["clientId"] == client_id
    assert json.loads(hits[0].body)["id"] == headers["webhook-id"]
    page.locator("nav.sections").get_by_role("link", name="Notifiers", exact=True).click()
    row = page.locator("#notifiers tr", has_text="Ops hook")
    expect(row.locator(".health")).to_have_text("healthy")
    expect(row.locator(".health .ok")).to_be_visible()

    # A receiver that always fails: the log shows the failures, the list says unhealthy.
    page.get_by_role("link", name="Ops hook").click()
    form = page.locator("#notifier-form")
    expect(form.get_by_label("Type").locator("option")).to_have_count(1)  # fixed once made
    form.get_by_label("Webhook URL (http or https)").fill(f"{signals.receiver.base_url}/status/500")
    form.get_by_role("button", name="Save notifier").click()
    expect(page.get_by_role("status")).to_have_text("Notifier Ops hook saved.")
    page.get_by_role("button", name="Send test event").click()
    unhealthy = page.locator("#notifier-health .bad")
    reload_until(page, unhealthy)
    expect(unhealthy).to_contain_text("unhealthy")
    expect(page.locator("#deliveries tbody tr").first).to_contain_text("500")
    page.locator("nav.sections").get_by_role("link", name="Notifiers", exact=True).click()
    expect(
        page.locator("#notifiers tr", has_text="Ops hook").locator(".health .bad")
    ).to_be_visible()

    # An e-mail notifier: recipients, each checked (the refused one quoted); no secret.
    page.get_by_role("link", name="New notifier").click()
    form = page.locator("#notifier-form")
    form.get_by_label("Name").fill("Ops mail")
    form.get_by_label("Type").select_option("email")
    expect(form.get_by_label("Webhook URL (http or https)")).to_be_hidden()
    form.get_by_label(recipients).fill("ops@example.test, not-an-address")
    form.locator("#event-choices").get_by_label("credits.low").check()
    form.get_by_role("button", name="Create notifier").click()
    recipients_field = form.locator(".field", has=page.get_by_label(recipients))
    expect(recipients_field.locator(".error")).to_contain_text("not-an-address")
    expect(form.locator("#event-choices").get_by_label("credits.low")).to_be_checked()
    form.get_by_label(recipients).fill("ops@example.test\noncall@example.test")
    form.get_by_role("button", name="Create notifier").click()
    expect(page.get_by_role("status")).to_have_text("Notifier Ops mail saved.")
    expect(page.locator("#signing-secret")).to_have_count(0)
    page.get_by_role("link", name="All notifiers").click()
    mail_row = page.locator("#notifiers tr", has_text="Ops mail")
    expect(mail_row).to_contain_text("ops@example.test, oncall@example.test")
    expect(mail_row).to_contain_text("credits.low")

    # A user-role member reads the list and the log but gets no form and no buttons.
    theirs = signed_in_page(browser, base, reader.token)
    theirs.goto(f"{base}/ui/c/{client_id}/notifiers")
    expect(theirs.locator("#notifiers")).to_contain_text("Ops hook")
    expect(theirs.get_by_role("link", name="New notifier")).to_have_count(0)
    theirs.get_by_role("link", name="Ops hook").click()
    expect(theirs.locator("#notifier-form")).to_have_count(0)
    expect(theirs.get_by_role("button", name="Send test event")).to_have_count(0)
    assert theirs.goto(f"{base}/ui/c/{client_id}/notifiers/new").status == 403
