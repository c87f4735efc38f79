"""Usage meters on a real data plane: a real admin, a real mitmdump, a real upstream, on
both stores (counters in memory here; tests/test_meters_redis.py runs them in Redis)."""

from __future__ import annotations

import gzip
import json
import uuid
from decimal import Decimal

import requests

from tests.async_support import finished, submit, wait_for_job
from tests.proxy_support import CALLER_KEY, Setup, call
from tests.support import Api, create, poll

AUTH = {"X-API-Key": CALLER_KEY}
HEALTH = "/_portcullis/health"
TOKENS_METER = {
    "meterName": "Tokens per day",
    "meterType": "response_value",
    "extraction": {"location": "body", "path": "usage.total_tokens"},
    "limits": {"day": 1000},
    "limitMode": "estimate",  # issue 13's rule: the average answer must fit too
}


def add_meter(api, made: Setup, body: dict) -> dict:
    return create(api, f"{made.base}/proxies/{made.id}/meters", body, "meters")


def synced(admin_server, gateway) -> None:
    """Wait until the data plane serves the admin's current configuration version."""
    version = Api(admin_server.base_url, None).get("/health").json()["configVersion"]

    def caught_up():
        seen = call(gateway, "GET", HEALTH).json().get("configVersion")
        return True if seen is not None and seen >= version else None

    assert poll(caught_up), "the data plane never caught up with the configuration"


def metered_proxy(api, upstream, gateway, admin_server, *meters: dict) -> tuple[Setup, list]:
    made = Setup(api, upstream)
    created = [add_meter(api, made, body) for body in meters]
    synced(admin_server, gateway)  # the proxy and its meters are served from here on
    return made, created


def arrived(upstream, marker: str) -> int:
    return sum(1 for r in upstream.received if marker in r.query)


def usage(api, made: Setup, meter: dict) -> dict:
    url = f"{made.base}/proxies/{made.id}/meters/{meter['meterId']}/usage"
    return {w["window"]: w for w in api.get(url).json()["usage"][0]["windows"]}


def wait_used(api, made: Setup, meter: dict, window: str, used: int) -> dict:
    """The meter's read-out of `window` once it shows `used` (written in batches)."""

    def written():
        found = usage(api, made, meter)[window]
        return found if found["used"] == used else None

    found = poll(written)
    assert found is not None, usage(api, made, meter)
    return found


def test_token_meter_refuses_the_third_call_before_the_upstream_sees_it(
    api, upstream, gateway, admin_server
):
    made, [meter] = metered_proxy(api, upstream, gateway, admin_server, TOKENS_METER)
    marker = uuid.uuid4().hex
    answers = [
        call(gateway, "POST", f"/api/{made.id}/tokens/400?m={marker}", headers=AUTH, json={})
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429], [a.text for a in answers]
    refused = answers[2]
    assert refused.json()["error"]["code"] == "METER_LIMIT_EXCEEDED"
    details = refused.json()["error"]["details"]
    assert details["meterId"] == meter["meterId"] and details["meterName"] == "Tokens per day"
    assert details["window"] == "day" and details["limit"] == 1000 and details["used"] == 800
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["requestrocket-proxy-code"] == "proxy-access-denied"
    assert arrived(upstream, marker) == 2, "the refused call reached the upstream"

    day = wait_used(api, made, meter, "day", 800)
    assert day["limit"] == 1000 and day["remaining"] == 200 and day["resetsAt"] % 86400 == 0
    telemetry = api.get(f"{made.base}/proxies/{made.id}/telemetry").json()
    [shown] = telemetry["meters"]  # the proxy's telemetry carries its meters' use
    assert shown["meterId"] == meter["meterId"]
    assert {w["window"]: w["used"] for w in shown["windows"]}["day"] == 800


def test_conditional_meter_counts_only_the_matching_model(api, upstream, gateway, admin_server):
    big = {
        "meterName": "big model",
        "meterType": "response_value",
        "meterMode": "conditional",
        "predicates": {"bodyChecks": [{"path": "model", "equals": "big"}]},
        "extraction": {"location": "header", "name": "X-Tokens"},
        "limits": {"day": 1000},
        "limitMode": "estimate",
    }
    made, [meter] = metered_proxy(api, upstream, gateway, admin_server, big)
    marker = uuid.uuid4().hex

    def send(model: str) -> requests.Response:
        path = f"/api/{made.id}/tokens/400?m={marker}"
        return call(gateway, "POST", path, headers=AUTH, json={"model": model})

    assert [send("small").status_code for _ in range(4)] == [200] * 4  # 1,600 small tokens
    assert [send("big").status_code for _ in range(3)] == [200, 200, 429]
    assert send("small").status_code == 200, "small requests are not counted by the big meter"
    assert arrived(upstream, marker) == 7

    wait_used(api, made, meter, "day", 800)
    # The proxy-wide read-out (what the web page shows) says the same.
    [every] = api.get(f"{made.base}/proxies/{made.id}/meters/usage").json()["usage"]
    assert every["meterId"] == meter["meterId"]
    assert {w["window"]: w["used"] for w in every["windows"]}["day"] == 800


def test_request_count_meter_limits_matching_requests(api, upstream, gateway, admin_server):
    posts = {
        "meterName": "writes per day",
        "meterType": "request_count",
        "meterMode": "conditional",
        "predicates": {"methods": ["POST"], "pathPattern": "^/status/"},
        "limits": {"day": 2},
    }
    counted_only = {"meterName": "all requests", "meterType": "request_count"}
    made, [meter, total] = metered_proxy(api, upstream, gateway, admin_server, posts, counted_only)
    marker = uuid.uuid4().hex
    url = f"/api/{made.id}/status/200?m={marker}"
    statuses = [call(gateway, "POST", url, headers=AUTH).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert call(gateway, "GET", url, headers=AUTH).status_code == 200  # GET is not counted
    assert arrived(upstream, marker) == 3

    # The refused POST counts toward neither meter (all or none); the GET only toward "all".
    wait_used(api, made, total, "day", 3)
    assert usage(api, made, total)["day"]["limit"] is None
    assert usage(api, made, meter)["day"]["used"] == 2


def test_missing_or_non_numeric_values_count_zero(api, upstream, gateway, admin_server):
    made, _ = metered_proxy(
        api, upstream, gateway, admin_server, {**TOKENS_METER, "limits": {"day": 1}}
    )
    for path in ("status/200", "bytes/10", "tokens/0"):
        assert call(gateway, "GET", f"/api/{made.id}/{path}", headers=AUTH).status_code == 200
    assert call(gateway, "GET", f"/api/{made.id}/tokens/5", headers=AUTH).status_code == 200
    refused = call(gateway, "GET", f"/api/{made.id}/status/200", headers=AUTH)
    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["used"] == 5


def test_a_deactivated_meter_stops_limiting(api, upstream, gateway, admin_server):
    made, [meter] = metered_proxy(
        api, upstream, gateway, admin_server, {**TOKENS_METER, "limits": {"hour": 0}}
    )
    assert call(gateway, "GET", f"/api/{made.id}/status/200", headers=AUTH).status_code == 429
    url = f"{made.base}/proxies/{made.id}/meters/{meter['meterId']}"
    assert api.put(url, json={"meterActive": False}).status_code == 200
    synced(admin_server, gateway)
    assert call(gateway, "GET", f"/api/{made.id}/status/200", headers=AUTH).status_code == 200


def test_async_checks_at_accept_and_counts_delivered_answers(api, upstream, gateway, admin_server):
    made, [meter] = metered_proxy(api, upstream, gateway, admin_server, TOKENS_METER)
    accepted = []
    for _ in range(2):
        response = submit(gateway, made, "/tokens/400", data=b"{}")
        assert response.status_code == 202, response.text
        accepted.append(response.json()["requestId"])
        wait_for_job(api, made, accepted[-1], finished)  # its answer's 400 tokens are counted
    refused = submit(gateway, made, "/tokens/400", data=b"{}")
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "METER_LIMIT_EXCEEDED"
    jobs = api.get(f"{made.base}/proxies/{made.id}/async").json()["asyncRequests"]
    assert sorted(job["requestId"] for job in jobs) == sorted(accepted), "no job stored"
    wait_used(api, made, meter, "day", 800)


def test_a_body_the_gateway_cannot_read_first_counts_as_matching(
    api, upstream, gateway, admin_server
):
    """Body checks never let a request past a meter: a content-encoded body, or one large
    enough to be streamed, cannot be read before forwarding, so it counts as matching."""
    big_only = {
        "meterName": "big model",
        "meterType": "response_value",
        "meterMode": "conditional",
        "predicates": {"bodyChecks": [{"path": "model", "equals": "big"}]},
        "extraction": {"location": "header", "name": "x-tokens"},
        "limits": {"day": 0},
    }
    made, _ = metered_proxy(api, upstream, gateway, admin_server, big_only)
    marker = uuid.uuid4().hex
    path = f"/api/{made.id}/tokens/1?m={marker}"
    small = json.dumps({"model": "small"}).encode()
    assert call(gateway, "POST", path, headers=AUTH, data=small).status_code == 200
    assert call(gateway, "POST", path, headers=AUTH, data=b'{"model": "big"}').status_code == 429
    encoded = {**AUTH, "Content-Encoding": "gzip"}
    refused = call(gateway, "POST", path, headers=encoded, data=gzip.compress(small))
    assert refused.status_code == 429, refused.text
    large = json.dumps({"model": "small", "pad": "x" * (2 * 1024 * 1024)}).encode()
    refused = call(gateway, "POST", path, headers=AUTH, data=large)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "METER_LIMIT_EXCEEDED"
    assert arrived(upstream, marker) == 1


def test_counted_values_are_charged_at_the_proxys_unit_price(api, upstream, gateway, admin_server):
    made = Setup(api, upstream)
    price = {"perRequest": "0", "perMeterUnits": "0.002", "meterUnitSize": 1000}  # per 1k tokens
    assert api.put(f"{made.base}/proxies/{made.id}/price", json=price).status_code == 200
    granted = api.post(f"{made.base}/budget/grants", json={"amount": "1.00"})
    assert granted.status_code in (200, 201), granted.text
    meter = add_meter(api, made, {**TOKENS_METER, "limits": {}})
    synced(admin_server, gateway)
    for _ in range(2):
        answer = call(gateway, "POST", f"/api/{made.id}/tokens/400", headers=AUTH, json={})
        assert answer.status_code == 200, answer.text

    def debits():
        rows = api.get(f"{made.base}/budget/entries").json()["entries"]
        taken = [row for row in rows if meter["meterId"] in (row.get("description") or "")]
        return taken if len(taken) == 2 else None

    taken = poll(debits)
    assert taken is not None, api.get(f"{made.base}/budget/entries").json()
    assert sorted(Decimal(row["amount"]) for row in taken) == [Decimal("-0.0008")] * 2
