"""The pool's events through platform notifiers, end to end on a real admin: an operator adds
a webhook with `run_admin.py pool-notifier add`; the admin's own scans and the pool API's
acquire produce `proxy.pool_low`, `credits.low`, `credits.exhausted` and `lease.expired`,
each once, delivered signed to a real receiver on 127.0.0.1; `/pool/stats/plugins` lists the
notifiers with their health; a target egressing through a thin pool tells its own client."""

from __future__ import annotations

import json
from argparse import Namespace

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from admin.cli_pool_notifiers import add_notifier, remove_notifier, run
from admin.notify.signing import signature
from models.notification import Notification
from models.notifier import Notifier, NotifierDelivery
from models.ssrf_policy import parse_allowances
from models.store import make_session_factory
from tests.pool_support import PoolApi, insert_proxies, proxy_row, stored_key_user
from tests.support import (
    Api,
    create,
    create_user,
    new_client,
    poll,
    run_admin_cli,
    start_admin,
    target_body,
)
from tests.upstream import RecordingUpstream
from tests.web_support import WAIT_S as PAGE_WAIT_S
from tests.web_support import sign_in

LOOPBACK = "127.0.0.0/8"
WAIT_S = 30


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """An admin that may call 127.0.0.1, delivers every 100 ms, scans the pool every 200 ms,
    warns of low credits below 2; and a webhook receiver."""
    with RecordingUpstream() as receiver:
        server = start_admin(
            tmp_path_factory.mktemp("pool-events"),
            PORTCULLIS_ALLOW_TARGETS=LOOPBACK,
            PORTCULLIS_NOTIFY_INTERVAL_MS="100",
            PORTCULLIS_NOTIFY_RETRY_BASE_MS="5",
            PORTCULLIS_POOL_SCHEDULE_TICK_MS="200",
            PORTCULLIS_POOL_CREDITS_LOW="2",
            PORTCULLIS_POOL_ALLOW_PROXIES=LOOPBACK,
            PORTCULLIS_POOL_ALLOW_SOURCES=LOOPBACK,
            PORTCULLIS_POOL_JUDGE_URL="http://127.0.0.1:9/no-judge",
        )
        try:
            yield server, receiver
        finally:
            server.stop()


def hook_events(receiver: RecordingUpstream, path: str) -> list[tuple[dict, dict]]:
    """(payload, headers) of each webhook POST to `path` so far."""
    return [
        (json.loads(r.body), {k.lower(): v for k, v in r.headers})
        for r in list(receiver.received)
        if r.method == "POST" and r.path == path
    ]


def wait_for_events(receiver, path: str, wanted: dict[str, int]) -> list[tuple[dict, dict]]:
    """The POSTs to `path` once at least `wanted[type]` of each event type arrived."""

    def check():
        got = hook_events(receiver, path)
        counts = {name: sum(p["type"] == name for p, _ in got) for name in wanted}
        return got if all(counts[n] >= wanted[n] for n in wanted) else None

    found = poll(check, WAIT_S)
    assert found is not None, [p["type"] for p, _ in hook_events(receiver, path)]
    return found


def test_pool_events_reach_platform_notifiers_once_each(stack, capsys):
    server, receiver = stack
    hook = "/hooks/platform"
    made = run_admin_cli(
        server,
        "pool-notifier",
        "add",
        "Pool ops",
        "--url",
        receiver.base_url + hook,
        "--subscribe",
        "proxy.pool_low,credits.*,lease.expired",
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_"), made.stdout
    # The same commands in-process (a CLI process costs seconds): a second notifier whose
    # receiver always fails, subscribed to the pool running low only; bad input is refused
    # naming the field, and nothing is stored.
    settings = server.settings(allow_targets=parse_allowances(LOOPBACK))
    add_notifier(settings, "Broken", receiver.base_url + "/hooks/status/500", [], "proxy.pool_low")
    for url, emails, subscribe, words in (
        ("http://10.0.0.1/hook", [], "*", "url"),
        (receiver.base_url, [], "no.such.event", "subscribesTo"),
        (None, ["not-an-address"], "*", "recipients"),
        (None, [], "*", "--url"),
    ):
        with pytest.raises(SystemExit) as refused:
            add_notifier(settings, "Bad", url, emails, subscribe)
        assert words in str(refused.value), (url, emails, subscribe, refused.value)

    # Two proxies: below the threshold of 10, so the whole pool is low (a system event).
    insert_proxies(
        server.database_url,
        [
            proxy_row(host="127.0.0.71", port=8001, status="active", score=0.9),
            proxy_row(host="127.0.0.72", port=8002, status="active", score=0.8),
        ],
    )
    admin = create_user(server, "pool-events-admin@example.test", platform_admin=True)
    admin_key, _ = stored_key_user(server.database_url, admin.email)
    buyer = create_user(server, "pool-events-buyer@example.test")
    buyer_key, _ = stored_key_user(server.database_url, buyer.email)
    grant = PoolApi(server.base_url, admin_key).request(
        "POST",
        "/account/credits/grant",
        json={"email": buyer.email, "amount": 2, "tx_type": "grant", "description": "trial"},
    )
    assert grant.status_code in (200, 201), grant.text
    pool = PoolApi(server.base_url, buyer_key)
    leases = []
    for remaining in (1, 0):  # 1 is below 2: low; then 0: exhausted
        answer = pool.request("POST", "/proxies/acquire", json={"lease_duration_seconds": 1})
        assert answer.status_code == 200, answer.text
        assert answer.json()["credits_remaining"] == remaining
        leases.append(answer.json()["lease_id"])

    got = wait_for_events(
        receiver,
        hook,
        {"proxy.pool_low": 1, "credits.low": 1, "credits.exhausted": 1, "lease.expired": 2},
    )
    for payload, headers in got:  # signed with the secret printed once
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        expected = signature(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
        assert headers["webhook-signature"] == expected
        assert payload["clientId"] is None  # system and user events only, never a client's
    by_type: dict[str, list[dict]] = {}
    for payload, _ in got:
        by_type.setdefault(payload["type"], []).append(payload["data"])
    assert by_type["credits.low"][0]["details"]["balance"] == 1
    assert by_type["credits.exhausted"][0]["details"]["balance"] == 0
    assert {d["details"]["leaseId"] for d in by_type["lease.expired"]} == set(leases)
    [pool_low] = by_type["proxy.pool_low"]
    assert pool_low["details"]["scope"] == "pool" and pool_low["details"]["threshold"] == 10

    # Each condition is one event however many scans and deliveries ran: the store holds
    # exactly one per condition, the notifier one delivery per event.
    with make_session_factory(server.engine)() as session:
        names = session.scalars(select(Notification.event)).all()
        for name, count in (
            ("credits.low", 1),
            ("credits.exhausted", 1),
            ("lease.expired", 2),
        ):
            assert names.count(name) == count, names
        ops = session.scalar(select(Notifier).where(Notifier.name == "Pool ops"))
        broken = session.scalar(select(Notifier).where(Notifier.name == "Broken"))
        assert ops.client_id is None and broken.client_id is None
        delivered = session.scalars(
            select(NotifierDelivery.event).where(NotifierDelivery.notifier_id == ops.id)
        ).all()
        assert sorted(delivered) == sorted(p["type"] for p, _ in got)
        broken_events = session.scalars(
            select(NotifierDelivery.event).where(NotifierDelivery.notifier_id == broken.id)
        ).all()
        assert set(broken_events) == {"proxy.pool_low"}

    # /stats/plugins: both, with the health the notifier pages show
    def plugins_settled():
        listed = pool.get("/stats/plugins").json()["notifiers"]
        health = {n["name"]: n["healthy"] for n in listed}
        return listed if health == {"Pool ops": True, "Broken": False} else None

    listed = poll(plugins_settled, WAIT_S)
    assert listed is not None, pool.get("/stats/plugins").json()
    ops_entry = next(n for n in listed if n["name"] == "Pool ops")
    assert ops_entry["subscribes_to"] == ["proxy.pool_low", "credits.*", "lease.expired"]
    assert {"name", "healthy", "subscribes_to", "kind", "id"} <= set(ops_entry)
    run(settings, Namespace(action="list"))  # `pool-notifier list`, in-process
    listing = capsys.readouterr().out
    assert "Pool ops" in listing and "UNHEALTHY" in listing and secret not in listing

    # removing one: gone from the list and from /stats/plugins
    assert remove_notifier(settings, broken.id) == "Broken"
    assert [n["name"] for n in pool.get("/stats/plugins").json()["notifiers"]] == ["Pool ops"]


def test_a_target_egressing_through_a_thin_pool_tells_its_client(stack):
    server, _ = stack
    owner = create_user(server, "pool-events-owner@example.test")
    api = Api(server.base_url, owner.token)
    client_id = new_client(api, "Thin pool")
    target = create(
        api,
        f"/api/clients/{client_id}/targets",
        target_body(targetEgress={"mode": "pool", "country": "NL", "minScore": 0.5}),
        "targets",
    )

    def pool_low():
        answer = api.get(f"/api/clients/{client_id}/notifications")
        assert answer.status_code == 200, answer.text
        found = [n for n in answer.json()["notifications"] if n["event"] == "proxy.pool_low"]
        return found or None

    found = poll(pool_low, WAIT_S)
    assert found is not None and len(found) == 1, found
    details = found[0]["details"]
    assert details["scope"] == "target" and details["targetId"] == target["sKey"]
    assert details["free"] == 0 and "country NL" in details["filters"]

    # Platform notifiers are nobody's client's: the client notifier API neither lists nor
    # reads, changes, tests or deletes them.
    settings = server.settings(allow_targets=parse_allowances(LOOPBACK))
    platform_id, _ = add_notifier(settings, "Platform only", None, ["ops@example.test"], "*")
    base = f"/api/clients/{client_id}/notifiers"
    listed = api.get(base)
    assert listed.status_code == 200 and listed.json()["notifiers"] == [], listed.text
    for method, path in (
        ("GET", f"{base}/{platform_id}"),
        ("PUT", f"{base}/{platform_id}"),
        ("DELETE", f"{base}/{platform_id}"),
        ("POST", f"{base}/{platform_id}/test"),
        ("GET", f"{base}/{platform_id}/deliveries"),
    ):
        answer = api.request(method, path, json={"name": "taken"} if method == "PUT" else None)
        assert answer.status_code == 404, (method, path, answer.text)
    assert remove_notifier(settings, platform_id) == "Platform only"


def test_a_platform_admin_manages_platform_notifiers_on_the_web(stack, browser):
    """Pool → Notifiers in Chromium: add a webhook (a refused URL is named next to its
    field), the secret shown once, send a test event that arrives signed, delete it; a user
    who is not a platform admin has no such page."""
    server, receiver = stack
    boss = create_user(server, "pool-events-web@example.test", platform_admin=True)
    page = browser.new_context().new_page()
    page.set_default_timeout(PAGE_WAIT_S * 1000)
    sign_in(page, server.base_url, boss.token)
    page.locator("#nav-pool").click()
    page.locator("nav[aria-label=Pool]").get_by_role("link", name="Notifiers").click()
    expect(page.get_by_role("heading", name="Notifiers")).to_be_visible()

    form = page.locator("#notifier-form")
    form.get_by_label("Name").fill("Web hook")
    form.get_by_label("Type").select_option("webhook")
    form.get_by_label("Webhook URL (http or https)").fill("http://10.0.0.1/hook")
    form.locator("input[name=events][value='credits.exhausted']").check()
    form.get_by_role("button", name="Create notifier").click()
    expect(page.locator("#notifier-form .has-error")).to_contain_text("10.0.0.1")
    hook = "/hooks/web"
    form.get_by_label("Webhook URL (http or https)").fill(receiver.base_url + hook)
    form.get_by_role("button", name="Create notifier").click()
    secret = page.locator("#signing-secret").inner_text().strip()
    assert secret.startswith("whsec_")
    page.get_by_role("link", name="All notifiers").click()
    row = page.locator("#pool-notifiers tr", has_text="Web hook")
    expect(row).to_contain_text("credits.exhausted")
    expect(row.locator(".health")).to_have_text("healthy")
    expect(page.locator("body")).not_to_contain_text(secret)

    row.get_by_role("button", name="Send test event").click()
    expect(page.get_by_text("Test event queued for Web hook")).to_be_visible()
    [(payload, headers)] = wait_for_events(receiver, hook, {"notifier.test": 1})
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    expected = signature(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    assert headers["webhook-signature"] == expected

    page.locator("#pool-notifiers tr", has_text="Web hook").get_by_role(
        "button", name="Delete"
    ).click()
    expect(page.get_by_text("Notifier Web hook deleted.")).to_be_visible()
    expect(page.locator("#pool-notifiers tr", has_text="Web hook")).to_have_count(0)

    reader = create_user(server, "pool-events-reader@example.test")
    other = browser.new_context().new_page()
    other.set_default_timeout(PAGE_WAIT_S * 1000)
    sign_in(other, server.base_url, reader.token)
    other.locator("#nav-pool").click()
    pool_nav = other.locator("nav[aria-label=Pool]")
    expect(pool_nav.get_by_role("link", name="Sources")).to_be_visible()
    expect(pool_nav.get_by_role("link", name="Notifiers")).to_have_count(0)
    answer = other.goto(f"{server.base_url}/ui/pool/notifiers")
    assert answer.status == 403
