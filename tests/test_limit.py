"""The limit stage in one data-plane process without Redis (counters in memory).

A proxy's `proxyMaxRequestsPerMinute` / `proxyMaxRequestsPerDay` admit exactly that
many requests, Proxy API and Async API together; the next ones answer 429
`RATE_LIMITED` with `Retry-After` (whole seconds to the window's reset), the
proxy-code headers and a message naming the window, are never sent upstream,
and appear in the request log like any other refusal. Proxies count apart.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.proxy_support import CALLER_KEY, Setup, call, logged, wait_until_served
from tests.support import assert_error

AUTH = {"X-API-Key": CALLER_KEY}
MARGIN_S = 10


def within_one_minute_window() -> None:
    """Start a burst early enough in a UTC minute that it ends in the same one.

    A per-minute limit starts over at the boundary; a burst crossing it would be
    admitted twice. Waits (polling the clock, bounded by a minute) when the
    current minute has less than MARGIN_S left.
    """
    while 60 - time.time() % 60 < MARGIN_S:
        time.sleep(0.2)  # waiting for the wall clock itself, not for another process


def received(upstream, path: str) -> int:
    return sum(1 for r in upstream.received if r.path == path)


def served(gateway, made: Setup) -> None:
    """Wait until the gateway serves the new proxy (the one probe counts as a request)."""
    probe = wait_until_served(gateway, f"/api/{made.id}/probe", AUTH)
    assert probe.status_code == 200, probe.text


@pytest.mark.parametrize("api_kind", ["api", "async"])
def test_a_per_minute_limit_admits_exactly_its_limit_then_429(api, upstream, gateway, api_kind):
    limit = 4
    made = Setup(api, upstream, proxyMaxRequestsPerMinute=limit)
    within_one_minute_window()
    served(gateway, made)  # 1 of the 4
    tail = f"limited-{uuid.uuid4().hex[:8]}"
    answers = [
        call(gateway, "POST", f"/{api_kind}/{made.id}/{tail}", headers=AUTH, data=b"{}")
        for _ in range(limit + 3)
    ]
    statuses = [r.status_code for r in answers]
    accepted = 200 if api_kind == "api" else 202
    assert statuses == [accepted] * (limit - 1) + [429] * 4, statuses

    refusal = answers[-1]
    body = assert_error(refusal, 429, "RATE_LIMITED")
    assert "per minute" in body["message"]
    assert body["error"]["details"]["window"] == "minute"
    assert body["error"]["details"]["limit"] == limit
    retry_after = int(refusal.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert body["error"]["details"]["retryAfterSeconds"] == retry_after
    assert refusal.headers["requestrocket-proxy-code"] == "proxy-access-denied"
    assert refusal.headers["requestrocket-proxy-message"] == body["message"]

    if api_kind == "api":
        assert received(upstream, f"/base/{tail}") == limit - 1
    entry = logged(api, made, refusal.headers["portcullis-request-id"])
    assert entry["proxyData"]["status"] == 429
    assert entry["proxyData"]["message"] == body["message"]
    assert entry["targetData"] is None
    assert entry["validationData"]["requestSent"] is False
    assert entry["validationData"]["proxyScopeValid"] is True  # authorized, then limited


def test_api_and_async_share_one_limit_and_proxies_count_apart(api, upstream, gateway):
    limited = Setup(api, upstream, proxyMaxRequestsPerMinute=3)
    other = Setup(api, upstream, proxyMaxRequestsPerMinute=3)
    within_one_minute_window()
    served(gateway, limited)
    served(gateway, other)
    first = call(gateway, "GET", f"/api/{limited.id}/a", headers=AUTH)
    second = call(gateway, "POST", f"/async/{limited.id}/b", headers=AUTH, data=b"{}")
    third = call(gateway, "GET", f"/api/{limited.id}/c", headers=AUTH)
    assert (first.status_code, second.status_code) == (200, 202)
    assert_error(third, 429, "RATE_LIMITED")
    queued = call(gateway, "POST", f"/async/{limited.id}/d", headers=AUTH, data=b"{}")
    assert_error(queued, 429, "RATE_LIMITED")  # refused before it is queued
    assert call(gateway, "GET", f"/api/{other.id}/e", headers=AUTH).status_code == 200


def test_a_per_day_limit_refuses_with_retry_after_until_midnight_utc(api, upstream, gateway):
    made = Setup(api, upstream, proxyMaxRequestsPerDay=2)
    served(gateway, made)
    assert call(gateway, "GET", f"/api/{made.id}/x", headers=AUTH).status_code == 200
    refusal = call(gateway, "GET", f"/api/{made.id}/x", headers=AUTH)
    now = time.time()
    body = assert_error(refusal, 429, "RATE_LIMITED")
    assert "per day" in body["message"] and body["error"]["details"]["window"] == "day"
    to_midnight = 86400 - now % 86400
    assert abs(int(refusal.headers["Retry-After"]) - to_midnight) <= 5
