"""Each event producer of issue 15, for real: expiring and expired credentials (the admin's
scan), credits low / exhausted and rate or meter limits reached (the data plane, through a
real gateway), a failing target Test (the web admin's button). Each condition is reported
once, however often it is seen.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

import jwt
import pytest

from admin.notify.producers import scan_credential_expiry
from models.base import utcnow
from models.crypto import KeyRing
from tests.notify_support import store_session
from tests.proxy_support import CALLER_KEY, Setup, call, free_port, start_proxy
from tests.support import (
    TEST_MASTER_KEYS,
    Api,
    create,
    create_user,
    credential_body,
    new_client,
    poll,
    start_admin,
)
from tests.web_support import Browser

AUTH = {"X-API-Key": CALLER_KEY}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """An admin that knows its gateway's address (for the target Test button), that gateway."""
    root = tmp_path_factory.mktemp("producers")
    port = free_port()
    admin = start_admin(root / "admin", PORTCULLIS_GATEWAY_URL=f"http://127.0.0.1:{port}")
    gateway = start_proxy(admin, root / "gateway", port=port)
    api = Api(admin.base_url, create_user(admin, "producer@example.test").token)
    yield SimpleNamespace(admin=admin, gateway=gateway, api=api)
    gateway.stop()
    admin.stop()


def notifications(api: Api, client_id: str, event: str) -> list[dict]:
    answer = api.get(f"/api/clients/{client_id}/notifications?limit=100")
    assert answer.status_code == 200, answer.text
    return [n for n in answer.json()["notifications"] if n["event"] == event]


def settled(api: Api, client_id: str, event: str, count: int = 1) -> list[dict]:
    """The client's `event` notifications once at least `count` are stored (deadline)."""
    found = poll(lambda: notifications(api, client_id, event)[count - 1 :] or None)
    assert found is not None, notifications(api, client_id, event)
    return notifications(api, client_id, event)


def until(gateway, path: str, status: int):
    answer = poll(
        lambda: r if (r := call(gateway, "GET", path, headers=AUTH)).status_code == status else None
    )
    assert answer is not None, f"{path} never answered {status}"
    return answer


def test_credential_expiry_scan_reports_expiring_and_expired_once(stack):
    api = stack.api
    client_id = new_client(api, "Expiring")
    base = f"/api/clients/{client_id}/credentials"
    now = utcnow()

    def credential(name: str, **overrides) -> str:
        body = credential_body("target", "bearer", credentialName=name, **overrides)
        return create(api, base, body, "credentials")["sKey"]

    soon = credential("soon", credentialExpiresAt=(now + timedelta(days=2)).isoformat())
    gone = credential("gone", credentialExpiresAt=(now - timedelta(hours=1)).isoformat())
    credential("later", credentialExpiresAt=(now + timedelta(days=30)).isoformat())
    credential("never")
    token = jwt.encode({"exp": now + timedelta(days=3), "sub": "x"}, "k" * 32, "HS256")
    jwt_soon = credential("jwt soon", credentialAuthType="jwt", credentialSecret={"token": token})
    key_ring = KeyRing.parse(TEST_MASTER_KEYS)
    for _ in range(2):  # the scan runs hourly and in every admin: a condition is reported once
        with store_session(stack.admin) as session:
            scan_credential_expiry(session, key_ring, warning_days=7)

    expiring = notifications(api, client_id, "credential.expiring")
    assert sorted((n["details"]["credentialId"], n["details"]["expires"]) for n in expiring) == (
        sorted([(soon, "secret"), (jwt_soon, "JWT")])
    )
    [expired] = notifications(api, client_id, "credential.expired")
    assert expired["details"]["credentialId"] == gone and expired["type"] == "client"
    assert "has expired" in expired["title"] and "expires in 1 day" in next(
        n["title"] for n in expiring if n["details"]["credentialId"] == soon
    )


def test_credits_low_and_exhausted_are_reported_once_each(stack, upstream):
    api, gateway = stack.api, stack.gateway
    made = Setup(api, upstream)
    price = api.put(f"{made.base}/proxies/{made.id}/price", json={"perRequest": "0.25"})
    assert price.status_code == 200, price.text
    assert api.put(f"{made.base}/budget", json={"lowBudgetThreshold": "0.5"}).status_code == 200
    path = f"/api/{made.id}/paid-{uuid.uuid4().hex[:8]}"
    until(gateway, path, 402)  # no credit yet: exhausted
    grant = api.post(f"{made.base}/budget/grants", json={"amount": "1.00"})
    assert grant.status_code == 201, grant.text
    until(gateway, path, 200)  # 0.75 left
    codes = [call(gateway, "GET", path, headers=AUTH).status_code for _ in range(6)]
    assert codes == [200, 200, 200, 402, 402, 402]  # 0.50, 0.25 (low), 0.00 (low), then none

    [low] = settled(api, made.client_id, "credits.low")
    assert low["details"]["lowBudgetThreshold"] == "0.500000"
    [exhausted] = settled(api, made.client_id, "credits.exhausted")
    assert "402" in exhausted["message"]
    # Nothing more follows from the same conditions (the writer is given time to settle).
    call(gateway, "GET", path, headers=AUTH)
    assert len(settled(api, made.client_id, "credits.low")) == 1
    assert len(notifications(api, made.client_id, "credits.exhausted")) == 1


def test_rate_and_meter_limits_reached_are_reported_once_per_window(stack, upstream):
    api, gateway = stack.api, stack.gateway
    made = Setup(api, upstream, proxyMaxRequestsPerMinute=2)
    path = f"/api/{made.id}/limited-{uuid.uuid4().hex[:8]}"
    until(gateway, path, 429)
    codes = [call(gateway, "GET", path, headers=AUTH).status_code for _ in range(10)]
    assert 429 in codes
    reached = settled(api, made.client_id, "ratelimit.reached")
    # One per minute window (a run that crosses a minute boundary may see two windows).
    starts = [n["details"]["windowStart"] for n in reached]
    assert len(starts) == len(set(starts)) and {n["details"]["window"] for n in reached} == {
        "minute"
    }
    assert all(
        n["details"]["proxyId"] == made.id and "meterId" not in n["details"] for n in reached
    )

    metered = Setup(api, upstream)
    meter = api.post(
        f"{metered.base}/proxies/{metered.id}/meters",
        json={"meterName": "calls", "meterType": "request_count", "limits": {"day": 1}},
    )
    assert meter.status_code == 201, meter.text
    meter_path = f"/api/{metered.id}/metered-{uuid.uuid4().hex[:8]}"
    until(gateway, meter_path, 429)
    for _ in range(5):
        assert call(gateway, "GET", meter_path, headers=AUTH).status_code == 429
    [by_meter] = settled(api, metered.client_id, "ratelimit.reached")
    assert by_meter["details"]["window"] == "day" and by_meter["details"]["meterId"]


def test_a_failing_target_test_is_reported(stack, upstream):
    api = stack.api
    made = Setup(api, upstream)
    target = f"{made.base}/targets/{made.target['sKey']}"
    changed = api.put(target, json={"targetTestPath": "/status/503"})
    assert changed.status_code == 200, changed.text
    until(stack.gateway, f"/api/{made.id}/status/503", 503)
    browser = Browser(stack.admin.base_url)
    assert browser.sign_in_with_token(api.token).status_code == 302
    page = f"/ui/c/{made.client_id}/targets/{made.target['sKey']}"
    answer = browser.post(f"{page}/test", {"csrf_token": browser.csrf(page)})
    assert answer.status_code == 200, answer.text[:500]
    [failed] = notifications(api, made.client_id, "target.test_failed")
    assert failed["details"]["status"] == 503 and failed["details"]["proxyId"] == made.id
    assert "503" in failed["message"]
