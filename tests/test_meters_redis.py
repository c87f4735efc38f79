"""Meters shared through a real redis-server by two real mitmdump processes on one store:
the counts of one are the counts of the other, and a request count limit admits exactly
its limit of 50 concurrent requests spread over both."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.async_support import user_api
from tests.clock_support import TestClock
from tests.proxy_support import CALLER_KEY, Setup, call, start_proxies
from tests.redis_support import RedisServer
from tests.support import start_admin
from tests.test_meters import TOKENS_METER, add_meter, arrived, synced, wait_used

AUTH = {"X-API-Key": CALLER_KEY}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """An admin and two data planes sharing one store, one Redis and one test clock; each
    test makes a client of its own on them."""
    directory = tmp_path_factory.mktemp("meters-redis")
    redis_server = RedisServer(directory / "redis").start()
    server = start_admin(directory / "admin", PORTCULLIS_REDIS_URL=redis_server.url)
    clock = TestClock(directory / "clock")
    gateways = []
    try:
        # Patient with Redis on a loaded test machine: a timeout would answer 503 (fail closed).
        patient = ("--set", "portcullis_redis_timeout_ms=3000")
        dirs = [directory / f"proxy{n}" for n in (1, 2)]
        gateways = start_proxies(server, dirs, *clock.args, *patient)
        yield server, user_api(server), gateways, clock
    finally:
        for gateway in gateways:
            gateway.stop()
        server.stop()
        redis_server.stop()


@pytest.fixture
def two_gateways(stack):
    """The module's stack, its clock back on the host's time (as a fresh clock starts)."""
    clock = stack[3]
    clock.shift(-clock.offset)
    return stack


def test_token_counts_are_shared_by_both_processes(two_gateways, upstream):
    server, api, gateways, _clock = two_gateways
    made = Setup(api, upstream)
    meter = add_meter(api, made, TOKENS_METER)
    for gateway in gateways:
        synced(server, gateway)
    marker = uuid.uuid4().hex
    path = f"/api/{made.id}/tokens/400?m={marker}"
    first = call(gateways[0], "POST", path, headers=AUTH, json={})
    second = call(gateways[1], "POST", path, headers=AUTH, json={})
    assert (first.status_code, second.status_code) == (200, 200)
    for gateway in gateways:  # each process sees 800 of 1000 used by both
        refused = call(gateway, "POST", path, headers=AUTH, json={})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["details"]["used"] == 800
    assert arrived(upstream, marker) == 2
    wait_used(api, made, meter, "day", 800)


def test_fifty_concurrent_requests_over_two_processes_admit_exactly_the_limit(
    two_gateways, upstream
):
    server, api, gateways, clock = two_gateways
    limit = 20
    made = Setup(api, upstream)
    meter = add_meter(
        api,
        made,
        {"meterName": "calls", "meterType": "request_count", "limits": {"minute": limit}},
    )
    for gateway in gateways:
        synced(server, gateway)
    clock.start_of_next_minute()  # 59 s of one window ahead
    marker = uuid.uuid4().hex

    def send(number: int):
        path = f"/api/{made.id}/status/200?m={marker}"
        return call(gateways[number % 2], "GET", path, headers=AUTH)

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = [r.status_code for r in pool.map(send, range(50))]
    assert statuses.count(200) == limit and statuses.count(429) == 50 - limit, statuses
    assert arrived(upstream, marker) == limit
    wait_used(api, made, meter, "day", limit)  # the admin reads on the real clock
