"""Request logs: what the data plane records, the Requests API, redaction and expiry."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.proxy_support import (
    CALLER_KEY,
    TARGET_TOKEN,
    Setup,
    call,
    logged,
    served_setup,
    start_proxy,
)
from tests.support import Api, assert_error, assert_invalid, run_admin_cli

WRITE_TIMEOUT_S = 10
NINETY_DAYS_S = 90 * 86400


@pytest.fixture(scope="module")
def untouched(admin_server, owner, upstream, gateway) -> Setup:
    """A proxy shared by the tests that only read its log's refusals (they add nothing to
    it); the others count their own entries on a fresh one (`setup`)."""
    return served_setup(Api(admin_server.base_url, owner.token), upstream, gateway)


def logs_of(api, setup, count: int, **params) -> dict:
    """The Requests API answer once it holds `count` entries (the writer batches)."""
    path = f"{setup.base}/proxies/{setup.id}/requests"
    deadline = time.monotonic() + WRITE_TIMEOUT_S
    while True:
        body = api.get(path, params=params).json()
        if body.get("totalRequests", 0) >= count or time.monotonic() > deadline:
            return body
        time.sleep(0.05)  # polling the store for the writer's batch, bounded by the deadline


def test_a_forwarded_request_is_logged_in_the_seed_shape(api, setup, gateway):
    before = len(logs_of(api, setup, 0)["requests"])
    response = call(
        gateway,
        "POST",
        f"/api/{setup.id}/v1/orders?page=2&Authorization={CALLER_KEY}",
        headers={"X-API-Key": CALLER_KEY, "Cookie": "sid=abc", "User-Agent": "e2e"},
        json={"item": "book", "password": "hunter2"},
    )
    assert response.ok
    request_id = response.headers["portcullis-request-id"]
    body = logs_of(api, setup, before + 1)
    assert body["message"] == "Success" and body["limitReached"] is False
    entry = next(r for r in body["requests"] if r["requestId"] == request_id)
    assert (entry["pKey"], entry["sKey"], entry["clientId"]) == (
        setup.id,
        request_id,
        setup.client_id,
    )
    assert entry["processed"] is True
    assert entry["TTL"] - entry["processedAt"] // 1000 == NINETY_DAYS_S

    proxy_data = entry["proxyData"]
    assert (proxy_data["method"], proxy_data["apiPath"], proxy_data["status"]) == (
        "POST",
        "/v1/orders",
        200,
    )
    assert proxy_data["receivedAt"] <= proxy_data["sentAt"]
    headers = proxy_data["apiHeaders"]
    assert headers["x-api-key"] == headers["cookie"] == "[REDACTED]"
    assert headers["user-agent"] == "e2e"
    assert proxy_data["apiParams"] == {"page": "2", "authorization": "[REDACTED]"}
    assert entry["targetData"]["status"] == 200
    assert entry["targetData"]["sentAt"] <= entry["targetData"]["receivedAt"]
    validation = dict(entry["validationData"])
    assert not validation.pop("systemError") and not validation.pop("requestConfigError")
    assert all(validation.values()), validation

    assert proxy_data["message"] == "Request logged"  # seed 001
    assert "responseHeaders" not in proxy_data and "statusCode" not in entry

    detail = api.get(f"{setup.base}/proxies/{setup.id}/requests/{request_id}").json()
    one = detail["requests"][0]
    assert '"item": "book"' in one["requestBody"] and "hunter2" not in one["requestBody"]
    assert one["responseBody"] and TARGET_TOKEN not in one["responseBody"]
    # Seed 001's detail: flat fields beside the nested data, which stays as listed.
    assert {key: one[key] for key in entry} == entry
    assert (one["method"], one["path"], one["statusCode"]) == ("POST", "/v1/orders", 200)
    assert one["duration"] == round(proxy_data["duration"] * 1000)
    assert isinstance(one["duration"], int)
    assert one["requestHeaders"] == proxy_data["apiHeaders"]
    assert one["responseHeaders"]["requestrocket-proxy-code"] == "proxy-access-granted"
    assert one["responseHeaders"]["content-type"] == "application/json"
    assert one["responseHeaders"]["portcullis-request-id"] == request_id


def test_response_headers_are_logged_redacted(admin_server, api, setup, gateway):
    """Cookies, credential-looking names and the injected secret never reach the log."""
    sent = {
        "Set-Cookie": "sid=cookie-value-1",
        "X-Auth-Token": "token-value-2",
        "X-Session-Id": "session-value-3",
        "X-Echo": f"Bearer {TARGET_TOKEN}",
        "X-Plain": "kept",
    }
    query = "&".join(f"header={name}:{value}" for name, value in sent.items())
    response = call(
        gateway, "GET", f"/api/{setup.id}/status/200?{query}", headers={"X-API-Key": CALLER_KEY}
    )
    assert response.status_code == 200 and response.headers["Set-Cookie"] == sent["Set-Cookie"]
    request_id = response.headers["portcullis-request-id"]
    logged(api, setup, request_id)
    detail = api.get(f"{setup.base}/proxies/{setup.id}/requests/{request_id}").json()
    headers = detail["requests"][0]["responseHeaders"]
    assert headers["set-cookie"] == headers["x-auth-token"] == "[REDACTED]"
    assert headers["x-session-id"] == "[REDACTED]"
    assert "[REDACTED]" in headers["x-echo"] and TARGET_TOKEN not in headers["x-echo"]
    assert headers["x-plain"] == "kept"
    stored = admin_server.store_bytes()
    for value in ("cookie-value-1", "token-value-2", "session-value-3", TARGET_TOKEN):
        assert value.encode() not in stored and value not in repr(detail)


def test_a_denied_request_is_logged_with_its_failed_check(api, setup, gateway):
    response = call(gateway, "GET", f"/api/{setup.id}/v1/x", headers={"X-API-Key": "wrong"})
    assert response.status_code == 401
    entry = logged(api, setup, response.headers["portcullis-request-id"])
    assert entry["proxyData"]["status"] == 401 and entry["targetData"] is None
    # A refusal's message is the one the caller got, not "Request logged".
    assert entry["proxyData"]["message"] == response.headers["requestrocket-proxy-message"]
    assert entry["proxyData"]["message"] != "Request logged"
    assert entry["validationData"]["proxyExists"] is True
    assert entry["validationData"]["proxyAuthenticated"] is False
    assert entry["validationData"]["requestSent"] is False
    path = f"{setup.base}/proxies/{setup.id}/requests/{entry['requestId']}"
    detail = api.get(path).json()["requests"][0]
    assert (detail["statusCode"], detail["path"]) == (401, "/v1/x")
    assert detail["responseHeaders"]["requestrocket-proxy-code"] == "proxy-access-denied"


def test_limit_and_time_filters(api, setup, gateway):
    before = logs_of(api, setup, 1)["totalRequests"]  # the fixture's readiness request
    for _ in range(3):
        assert call(gateway, "GET", f"/api/{setup.id}/x", headers={"X-API-Key": CALLER_KEY}).ok
    everything = logs_of(api, setup, before + 3)
    assert everything["totalRequests"] == before + 3
    newest_first = [r["processedAt"] for r in everything["requests"]]
    assert newest_first == sorted(newest_first, reverse=True)

    limited = logs_of(api, setup, 2, limit=2)
    assert limited["totalRequests"] == 2 and limited["limitReached"] is True
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert logs_of(api, setup, 0, processedAfter=later)["totalRequests"] == 0
    assert logs_of(api, setup, before + 3, processedAfter=earlier)["totalRequests"] == before + 3
    assert logs_of(api, setup, 0, processedBefore=earlier)["totalRequests"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"processedAfter": "yesterday"}, "processedAfter"),
        ({"processedBefore": "2024-13-01"}, "processedBefore"),
    ],
)
def test_bad_query_parameters_are_400(api, untouched, params, field):
    response = api.get(f"{untouched.base}/proxies/{untouched.id}/requests", params=params)
    assert_invalid(response, field)


def test_other_tenants_and_unknown_ids_are_404(api, untouched, stranger):
    path = f"{untouched.base}/proxies/{untouched.id}/requests"
    assert_error(api.as_user(stranger).get(path), 404, "NOT_FOUND")
    assert_error(api.get(f"{path}/no-such-request"), 404, "NOT_FOUND")


def test_secrets_never_reach_the_store(admin_server, api, setup, gateway):
    assert call(gateway, "GET", f"/api/{setup.id}/x", headers={"X-API-Key": CALLER_KEY}).ok
    logs_of(api, setup, 1)
    stored = admin_server.store_bytes()
    assert TARGET_TOKEN.encode() not in stored and CALLER_KEY.encode() not in stored


def test_expired_entries_are_purged(admin_server, api, setup, tmp_path):
    kept = logs_of(api, setup, 1)["totalRequests"]  # logged with the default 90 days
    short = start_proxy(admin_server, tmp_path, "--set", "portcullis_log_ttl_days=0")
    try:
        response = requests.get(
            f"{short.base_url}/api/{setup.id}/x", headers={"X-API-Key": CALLER_KEY}, timeout=15
        )
        assert response.ok
        assert logs_of(api, setup, kept + 1)["totalRequests"] == kept + 1
    finally:
        short.stop()
    result = run_admin_cli(admin_server, "purge")
    assert result.returncode == 0, result.stderr
    assert "Purged" in result.stdout
    assert logs_of(api, setup, 0)["totalRequests"] == kept


def test_headers_of_any_bytes_are_logged_and_read_back_as_sent(api, setup, gateway):
    """The JSON columns are written by orjson, or by Python's json for what orjson refuses (a
    lone surrogate: a header byte that is not UTF-8, decoded as mitmproxy does): either way
    the entry is stored and reads back with the header values as received, not only for
    ASCII, and the redaction of the faster path still applies."""
    response = call(
        gateway,
        "GET",
        f"/api/{setup.id}/status/200?header=X-Answer:d%C3%A9j%C3%A0",
        headers={
            "X-API-Key": CALLER_KEY,
            "X-Utf8": "café ✓".encode(),
            "X-Latin1": b"caf\xe9",
            "X-Session": b"secret-\xff",
        },
    )
    assert response.ok
    entry = logged(api, setup, response.headers["portcullis-request-id"])
    headers = entry["requestHeaders"]
    assert headers["x-utf8"] == "café ✓"
    assert headers["x-latin1"] == "caf\ufffd"  # the API shows an undecodable byte as U+FFFD
    assert headers["x-session"] == headers["x-api-key"] == "[REDACTED]"
    # The target sent Latin-1 bytes (not UTF-8): the log keeps those bytes, as mitmproxy does.
    answer = entry["responseHeaders"]["x-answer"]
    assert answer.encode("utf-8", "surrogateescape") == "déjà".encode("latin-1")

    plain = call(
        gateway,
        "GET",
        f"/api/{setup.id}/v1/y",
        headers={"X-API-Key": CALLER_KEY, "X-Utf8": "ü".encode()},
    )
    assert (
        logged(api, setup, plain.headers["portcullis-request-id"])["requestHeaders"]["x-utf8"]
        == "ü"
    )


def test_a_burst_of_concurrent_requests_is_logged_whole(api, setup, gateway):
    """Batches of many rows (the writer gathers 0.2 s of them): every request of a burst is
    logged, each entry with its own request."""
    from concurrent.futures import ThreadPoolExecutor

    def one(n: int) -> tuple[str, str]:
        path = f"/api/{setup.id}/burst/{n}"
        response = call(gateway, "GET", path, headers={"X-API-Key": CALLER_KEY})
        assert response.ok
        return response.headers["portcullis-request-id"], f"/burst/{n}"

    with ThreadPoolExecutor(max_workers=16) as pool:
        sent = list(pool.map(one, range(60)))
    for request_id, path in sent:
        assert logged(api, setup, request_id)["proxyData"]["apiPath"] == path
