"""The limit stage in one data-plane process without Redis (counters in memory).

A proxy's `proxyMaxRequestsPerMinute` / `proxyMaxRequestsPerDay` admit exactly that
many requests, Proxy API and Async API together; the next ones answer 429
`RATE_LIMITED` with `Retry-After` (whole seconds to the window's reset), the
proxy-code headers and a message naming the window, are never sent upstream,
and appear in the request log like any other refusal. Proxies count apart.
Every answer of a counted request carries `RateLimit-Policy` / `RateLimit`
(draft-ietf-httpapi-ratelimit-headers) and, from 80 % of a window on, the
`requestrocket-proxy-warning` header. The gateway here runs on a test clock
(tests/clock_support.py): windows are moved, never waited for.
"""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.clock_support import TestClock
from tests.proxy_support import CALLER_KEY, Setup, call, logged, start_proxy, wait_until_served
from tests.support import assert_error

AUTH = {"X-API-Key": CALLER_KEY}
WARNING = "requestrocket-proxy-warning"
CURRENT = re.compile(r'^"(minute|day)";r=(\d+);t=(\d+)$')


@pytest.fixture(scope="module")
def clock(tmp_path_factory) -> TestClock:
    return TestClock(tmp_path_factory.mktemp("clock") / "offset")


@pytest.fixture(scope="module")
def gateway(admin_server, tmp_path_factory, clock):
    """A data plane of its own on the shared admin, on the test clock."""
    proxy = start_proxy(admin_server, tmp_path_factory.mktemp("proxy"), *clock.args)
    yield proxy
    proxy.stop()


def current_window(response) -> tuple[str, int, int]:
    """The `RateLimit` field: (window, remaining, seconds to reset)."""
    match = CURRENT.match(response.headers.get("RateLimit", ""))
    assert match, response.headers
    return match.group(1), int(match.group(2)), int(match.group(3))


def received(upstream, path: str) -> int:
    return sum(1 for r in upstream.received if r.path == path)


def served(gateway, made: Setup) -> None:
    """Wait until the gateway serves the new proxy (the one probe counts as a request)."""
    probe = wait_until_served(gateway, f"/api/{made.id}/probe", AUTH)
    assert probe.status_code == 200, probe.text


@pytest.mark.parametrize("api_kind", ["api", "async"])
def test_a_per_minute_limit_admits_exactly_its_limit_then_429(
    api, upstream, gateway, clock, api_kind
):
    limit = 4
    made = Setup(api, upstream, proxyMaxRequestsPerMinute=limit)
    clock.start_of_next_minute()
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
    assert current_window(refusal) == ("minute", 0, retry_after)
    for granted in answers[: limit - 1]:  # the 200s or the async 202s alike
        assert granted.headers["RateLimit-Policy"].startswith('"minute";q=4;w=60, "day";q=')
        assert current_window(granted)[0] == "minute"
    assert [current_window(r)[1] for r in answers[: limit - 1]] == [2, 1, 0]

    if api_kind == "api":
        assert received(upstream, f"/base/{tail}") == limit - 1
    entry = logged(api, made, refusal.headers["portcullis-request-id"])
    assert entry["proxyData"]["status"] == 429
    assert entry["proxyData"]["message"] == body["message"]
    assert entry["targetData"] is None
    assert entry["validationData"]["requestSent"] is False
    assert entry["validationData"]["proxyScopeValid"] is True  # authorized, then limited


def test_api_and_async_share_one_limit_and_proxies_count_apart(api, upstream, gateway, clock):
    limited = Setup(api, upstream, proxyMaxRequestsPerMinute=3)
    other = Setup(api, upstream, proxyMaxRequestsPerMinute=3)
    clock.start_of_next_minute()
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


def test_a_per_day_limit_refuses_with_retry_after_until_midnight_utc(api, upstream, gateway, clock):
    made = Setup(api, upstream, proxyMaxRequestsPerDay=2)
    served(gateway, made)
    assert call(gateway, "GET", f"/api/{made.id}/x", headers=AUTH).status_code == 200
    refusal = call(gateway, "GET", f"/api/{made.id}/x", headers=AUTH)
    now = clock.now()
    body = assert_error(refusal, 429, "RATE_LIMITED")
    assert "per day" in body["message"] and body["error"]["details"]["window"] == "day"
    to_midnight = 86400 - now % 86400
    assert abs(int(refusal.headers["Retry-After"]) - to_midnight) <= 5
    assert current_window(refusal)[:2] == ("day", 0)
    assert refusal.headers[WARNING] == "Approaching rate limit threshold"

    clock.shift(86400)  # the next UTC day admits again
    assert call(gateway, "GET", f"/api/{made.id}/x", headers=AUTH).status_code == 200


def test_five_per_minute_then_429_with_headers_and_the_next_window_admits(
    api, upstream, gateway, clock
):
    made = Setup(api, upstream, proxyMaxRequestsPerMinute=5)
    served(gateway, made)
    clock.start_of_next_minute()  # a fresh window: the probe counted in the one before
    path = f"/api/{made.id}/five-{uuid.uuid4().hex[:8]}"
    answers = [call(gateway, "GET", path, headers=AUTH) for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 5 + [429]
    for answer in answers:
        policy = answer.headers["RateLimit-Policy"]
        assert policy == '"minute";q=5;w=60, "day";q=20000;w=86400', policy
    assert [current_window(r)[:2] for r in answers] == [
        ("minute", 4), ("minute", 3), ("minute", 2), ("minute", 1), ("minute", 0), ("minute", 0)
    ]  # fmt: skip
    # 80 % of the window: from the 4th request on (4 of 5), never before.
    assert [r.headers.get(WARNING) for r in answers[:3]] == [None] * 3
    for answer in answers[3:]:
        assert answer.headers.get(WARNING) == "Approaching rate limit threshold"  # once
    refusal = answers[-1]
    assert_error(refusal, 429, "RATE_LIMITED")
    retry_after = int(refusal.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert current_window(refusal)[2] == retry_after

    clock.shift(retry_after)  # the window has reset: admitted again
    again = call(gateway, "GET", path, headers=AUTH)
    assert again.status_code == 200, again.text
    assert current_window(again)[:2] == ("minute", 4)
    assert WARNING not in again.headers


def test_fifty_concurrent_requests_against_twenty_admit_exactly_twenty(
    api, upstream, gateway, clock
):
    made = Setup(api, upstream, proxyMaxRequestsPerMinute=20)
    served(gateway, made)
    clock.start_of_next_minute()
    tail = f"burst-{uuid.uuid4().hex[:8]}"

    def send(_):
        return call(gateway, "GET", f"/api/{made.id}/{tail}", headers=AUTH).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(send, range(50)))
    assert statuses.count(200) == 20 and statuses.count(429) == 30, statuses
    assert received(upstream, f"/base/{tail}") == 20


def test_answers_before_the_limit_stage_have_no_rate_limit_headers(api, upstream, gateway):
    """Answers refused before the limit stage (unknown proxy) carry no RateLimit fields."""
    answer = call(gateway, "GET", f"/api/prx_{uuid.uuid4().hex}/x", headers=AUTH)
    assert answer.status_code == 404
    assert "RateLimit" not in answer.headers and "RateLimit-Policy" not in answer.headers
