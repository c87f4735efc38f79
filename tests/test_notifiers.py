"""Notifiers (issue 15): signed webhooks with retries, e-mail, subscriptions, health, input.

One admin for the module: it may call 127.0.0.1 (the receiver), delivers every
100 ms and retries after a few ms, and mails a real SMTP server (aiosmtpd). The
webhook receiver is tests/upstream.py's recording server: `/flaky/{key}/2` fails
twice then answers 200, `/status/500` always fails. Signatures are checked with
the independent `standardwebhooks` package.
"""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from admin.notify.worker import CLAIM_S, claim_due
from models import Client
from models.events import Event, record_event
from models.notifier import Notifier
from tests.async_support import key, user_api
from tests.notify_support import (
    deliveries,
    finished,
    payload_of,
    start_notify_admin,
    store_session,
    webhook,
)
from tests.smtp_support import SmtpServer, text_of
from tests.support import (
    Api,
    User,
    add_member,
    assert_error,
    assert_invalid,
    create_user,
    new_client,
    poll,
)
from tests.upstream import RecordingUpstream


@pytest.fixture(scope="module")
def mail():
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def receiver():
    with RecordingUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def notify_admin(tmp_path_factory, mail):
    server = start_notify_admin(
        tmp_path_factory.mktemp("notify-admin"), PORTCULLIS_SMTP_URL=mail.url
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def napi(notify_admin) -> Api:
    return user_api(notify_admin)


def new_user(server, email: str) -> tuple[User, Api]:
    user = create_user(server, email)
    return user, Api(server.base_url, user.token)


def create_notifier(api: Api, client_id: str, body: dict) -> dict:
    answer = api.post(f"/api/clients/{client_id}/notifiers", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["notifiers"][0]


def send_test(api: Api, client_id: str, notifier_id: str) -> dict:
    answer = api.post(f"/api/clients/{client_id}/notifiers/{notifier_id}/test")
    assert answer.status_code == 202, answer.text
    [queued] = answer.json()["deliveries"]
    assert queued["event"] == "notifier.test" and queued["status"] == "pending"
    return queued


def received_at(receiver: RecordingUpstream, path: str) -> list:
    return [r for r in receiver.received if r.path == path]


def test_webhook_is_signed_retried_until_delivered_once_and_secret_rotates(napi, receiver):
    client_id = new_client(napi, "Hooks")
    path = f"/flaky/{key()}/2"
    made = create_notifier(napi, client_id, webhook(receiver.base_url + path, ["*"]))
    secret = made["signingSecret"]
    assert secret.startswith("whsec_") and made["healthy"] is True
    base = f"/api/clients/{client_id}/notifiers/{made['notifierId']}"
    # The secret is shown once: never in a read, a list or an update.
    for answer in (
        napi.get(base),
        napi.get(f"/api/clients/{client_id}/notifiers"),
        napi.put(base, json={"name": "Ops hook 2"}),
    ):
        assert answer.status_code == 200, answer.text
        assert secret not in answer.text and "signingSecret" not in answer.text

    queued = send_test(napi, client_id, made["notifierId"])
    [delivery] = finished(napi, client_id, made["notifierId"])
    assert delivery["deliveryId"] == queued["deliveryId"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    assert delivery["lastStatus"] == 200 and delivery["lastError"] is None
    attempts = received_at(receiver, path)
    assert len(attempts) == 3  # two failures, then exactly one successful delivery
    for attempt in attempts:
        headers = dict(attempt.headers)
        assert headers["webhook-id"] == delivery["eventId"]  # the same id on every retry
        Webhook(secret).verify(attempt.body.decode(), headers)
    body = payload_of(attempts[-1].body)
    assert body["id"] == delivery["eventId"] and body["type"] == "notifier.test"
    assert body["clientId"] == client_id and body["data"]["title"].startswith("Test event")
    assert napi.get(base).json()["notifiers"][0]["healthy"] is True

    rotated = napi.post(f"{base}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["notifiers"][0]["signingSecret"]
    assert new_secret.startswith("whsec_") and new_secret != secret
    send_test(napi, client_id, made["notifierId"])
    finished(napi, client_id, made["notifierId"], count=2)
    latest = received_at(receiver, path)[-1]
    Webhook(new_secret).verify(latest.body.decode(), dict(latest.headers))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(latest.body.decode(), dict(latest.headers))


def test_receiver_that_always_fails_ends_failed_and_notifier_unhealthy(napi, receiver):
    client_id = new_client(napi, "Broken hooks")
    made = create_notifier(napi, client_id, webhook(receiver.base_url + "/status/500", ["*"]))
    send_test(napi, client_id, made["notifierId"])
    [delivery] = finished(napi, client_id, made["notifierId"])
    assert delivery["status"] == "failed" and delivery["finishedAt"]
    assert delivery["attempts"] == 11  # the first try and the async queue's 10 retries
    assert delivery["lastStatus"] == 500 and "500" in delivery["lastError"]
    answer = napi.get(f"/api/clients/{client_id}/notifiers/{made['notifierId']}")
    assert answer.json()["notifiers"][0]["healthy"] is False


def test_email_notifier_sends_text_and_html(napi, mail):
    client_id = new_client(napi, "Mailers")
    body = {
        "name": "Ops mail",
        "type": "email",
        "subscribesTo": ["credits.*"],
        "recipients": ["ops-team@example.test"],
    }
    made = create_notifier(napi, client_id, body)
    assert "signingSecret" not in made and made["url"] is None
    send_test(napi, client_id, made["notifierId"])
    message = mail.mailbox.to("ops-team@example.test")
    assert message["Subject"] == "[Portcullis] Test event from notifier Ops mail"
    assert "the notifier works" in text_of(message, "plain")
    assert "<h2>Test event from notifier Ops mail</h2>" in text_of(message, "html")
    [delivery] = finished(napi, client_id, made["notifierId"])
    assert delivery["status"] == "delivered"


def test_subscriptions_choose_which_events_each_notifier_gets(napi, notify_admin, receiver):
    client_id = new_client(napi, "Subscribers")
    credits_only = create_notifier(
        napi, client_id, webhook(receiver.base_url + "/credits-only", ["credits.*"])
    )
    everything = create_notifier(napi, client_id, webhook(receiver.base_url + "/all", ["*"]))
    exact = create_notifier(
        napi, client_id, webhook(receiver.base_url + "/exact", ["ratelimit.reached"])
    )
    disabled = create_notifier(
        napi, client_id, webhook(receiver.base_url + "/off", ["*"], enabled=False)
    )
    other_client = new_client(napi, "Bystander")
    bystander = create_notifier(napi, other_client, webhook(receiver.base_url + "/by", ["*"]))
    with store_session(notify_admin) as session:
        for name in ("credits.low", "ratelimit.reached"):
            record_event(session, Event(name, name, "happened", {}, client_id=client_id))
        session.commit()

    def events_of(notifier: dict, count: int) -> set[str]:
        rows = finished(napi, client_id, notifier["notifierId"], count)
        return {d["event"] for d in rows}

    assert events_of(credits_only, 1) == {"credits.low"}
    assert events_of(everything, 2) == {"credits.low", "ratelimit.reached"}
    log = f"/api/clients/{client_id}/notifiers/{everything['notifierId']}/deliveries"
    first = napi.get(f"{log}?limit=1").json()
    second = napi.get(f"{log}?limit=1&nextToken={first['nextToken']}").json()
    assert second["nextToken"] is None
    pages = [d["deliveryId"] for d in first["deliveries"] + second["deliveries"]]
    assert pages == [d["deliveryId"] for d in deliveries(napi, client_id, everything["notifierId"])]
    assert_invalid(napi.get(f"{log}?nextToken=garbage"), "nextToken")
    assert events_of(exact, 1) == {"ratelimit.reached"}
    assert deliveries(napi, client_id, disabled["notifierId"]) == []
    test_disabled = f"/api/clients/{client_id}/notifiers/{disabled['notifierId']}/test"
    assert_error(napi.post(test_disabled), 409, "NOTIFIER_DISABLED")
    assert deliveries(napi, other_client, bystander["notifierId"]) == []
    assert poll(lambda: received_at(receiver, "/all")[1:] or None)  # both arrived


def test_bad_input_and_other_people_are_refused(napi, notify_admin, receiver):
    client_id = new_client(napi, "Checks")
    base = f"/api/clients/{client_id}/notifiers"
    good = webhook(receiver.base_url + "/ok", ["*"])
    email = {"name": "Mail", "type": "email", "subscribesTo": ["*"], "recipients": ["a@b.test"]}
    cases = [
        ({**good, "name": ""}, "name"),
        ({k: v for k, v in good.items() if k != "name"}, "name"),
        ({**good, "type": "sms"}, "type"),
        ({**good, "subscribesTo": []}, "subscribesTo"),
        ({**good, "subscribesTo": ["*", "credits.lo"]}, "subscribesTo.1"),
        ({**good, "subscribesTo": ["nothing.*"]}, "subscribesTo.0"),
        ({**good, "subscribesTo": "credits.*"}, "subscribesTo"),
        ({**good, "url": None}, "url"),
        ({**good, "url": "ftp://127.0.0.1/x"}, "url"),
        ({**good, "url": "http://127.0.0.1/\r\nX: y"}, "url"),
        ({**good, "recipients": ["a@b.test"]}, "recipients"),
        ({**good, "enabled": "perhaps"}, "enabled"),
        ({**good, "extra": 1}, "extra"),
        ({**email, "recipients": []}, "recipients"),
        ({**email, "recipients": ["not an address"]}, "recipients.0"),
        ({**email, "url": receiver.base_url}, "url"),
        # SSRF: internal addresses other than the allowed 127.0.0.1, refused at save.
        ({**good, "url": "http://10.1.2.3/hook"}, "url"),
        ({**good, "url": "http://169.254.169.254/latest/meta-data"}, "url"),
        ({**good, "url": "http://[::1]:8080/hook"}, "url"),
        ({**good, "url": "http://127.0.0.2/hook"}, "url"),
        ({**good, "url": "http://0.0.0.0/hook"}, "url"),
    ]
    for body, field in cases:
        assert_invalid(napi.post(base, json=body), field)
    assert napi.get(base).json()["notifiers"] == []

    made = create_notifier(napi, client_id, good)
    one = f"{base}/{made['notifierId']}"
    assert_invalid(napi.put(one, json={"type": "email"}), "type")
    assert_invalid(napi.put(one, json={"url": "http://10.0.0.1/"}), "url")
    assert_invalid(napi.get(f"{one}/deliveries?limit=0"), "limit")
    assert_error(napi.post(f"{base}/{made['notifierId']}x/test"), 404, "NOT_FOUND")

    stranger, member = (new_user(notify_admin, f"{who}@example.test") for who in ("sam", "mo"))
    add_member(napi, client_id, member[0], "user")
    stranger, member = stranger[1], member[1]
    for method, path in [("GET", base), ("GET", one), ("POST", f"{one}/test"), ("DELETE", one)]:
        assert_error(stranger.request(method, path), 404, "NOT_FOUND")
    assert member.get(one).status_code == 200 and "signingSecret" not in member.get(one).text
    for method, path in [("POST", f"{one}/test"), ("POST", f"{one}/rotate-secret")]:
        assert member.request(method, path).status_code == 403
    assert member.delete(one).status_code == 403
    other = new_client(napi, "Elsewhere")
    assert_error(napi.get(f"/api/clients/{other}/notifiers/{made['notifierId']}"), 404, "NOT_FOUND")
    assert napi.delete(one).status_code == 200
    assert_error(napi.get(one), 404, "NOT_FOUND")


def test_only_one_of_several_admins_claims_a_due_delivery(sessions):
    """A second worker (another admin process) never claims what the first holds: the claim
    is a conditional UPDATE; a claim that lapsed (its admin died mid-send) is taken over."""
    with sessions() as session:
        client = Client(name="Claims")
        session.add(client)
        session.flush()
        notifier = Notifier(
            client_id=client.id, name="n", kind="webhook", subscribes_to=["*"], url="http://x/"
        )
        session.add(notifier)
        session.flush()
        record_event(session, Event("notifier.test", "t", "m", client_id=client.id))
        record_event(session, Event("credits.low", "t", "m", client_id=client.id))
        session.commit()
    now = time.time()
    with sessions() as first, sessions() as second:
        claimed = claim_due(first, now) + claim_due(second, now)
    assert len(claimed) == 2 and len({c.delivery_id for c in claimed}) == 2
    with sessions() as session:
        assert claim_due(session, now + 1) == []  # claimed: not due again while the claim holds
        taken_over = claim_due(session, now + CLAIM_S + 1)
    assert {c.delivery_id for c in taken_over} == {c.delivery_id for c in claimed}
