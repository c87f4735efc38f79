"""Limits shared through a real redis-server (PORTCULLIS_REDIS_URL) by real processes.

- Two mitmdump processes on one store and one Redis: a proxy limited to 20 per
  minute, 50 concurrent requests spread over both, exactly 20 reach the
  upstream; the rest answer 429 with the `RateLimit` headers; the next window
  (moved there on the test clock both processes share) admits again.
- Redis stopped under a running gateway: requests answer 503
  `LIMITS_UNAVAILABLE` and reach nothing, the request log records them, both
  health answers say Redis is unreachable (data plane: 200 "degraded", admin:
  503). Redis started again on the same port: requests flow again, no restart.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.async_support import user_api
from tests.clock_support import TestClock
from tests.proxy_support import (
    CALLER_KEY,
    Setup,
    call,
    logged,
    start_proxies,
    start_proxy,
    wait_until_served,
)
from tests.redis_support import RedisServer
from tests.support import answering, assert_error, poll, start_admin
from tests.test_health import HEALTH, admin_health
from tests.test_limit import current_window, received

AUTH = {"X-API-Key": CALLER_KEY}


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def shared(tmp_path, redis_server):
    """An admin on a store of its own, told about Redis, and a user of it."""
    server = start_admin(tmp_path / "admin", PORTCULLIS_REDIS_URL=redis_server.url)
    try:
        yield server, user_api(server)
    finally:
        server.stop()


def test_two_processes_admit_exactly_the_limit_together(shared, upstream, tmp_path):
    server, api = shared
    clock = TestClock(tmp_path / "clock")
    # Patient with Redis on a loaded test machine: a timeout would answer 503 (fail closed).
    patient = ("--set", "portcullis_redis_timeout_ms=3000")
    dirs = [tmp_path / f"proxy{n}" for n in (1, 2)]
    gateways = start_proxies(server, dirs, *clock.args, *patient)
    try:
        limit = 20
        made = Setup(api, upstream, proxyMaxRequestsPerMinute=limit)
        for gateway in gateways:
            probe = wait_until_served(gateway, f"/api/{made.id}/probe", AUTH)
            assert probe.status_code == 200, probe.text
        clock.start_of_next_minute()  # a fresh window: the probes counted in the one before
        tail = f"spread-{uuid.uuid4().hex[:8]}"

        def send(number: int):
            gateway = gateways[number % 2]
            return call(gateway, "GET", f"/api/{made.id}/{tail}", headers=AUTH)

        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(send, range(50)))
        statuses = [r.status_code for r in answers]
        assert statuses.count(200) == limit and statuses.count(429) == 50 - limit, statuses
        assert received(upstream, f"/base/{tail}") == limit
        remaining = sorted(current_window(r)[1] for r in answers if r.status_code == 200)
        assert remaining == list(range(limit))  # each count seen once: none lost, none twice
        for refusal in (r for r in answers if r.status_code == 429):
            assert current_window(refusal)[:2] == ("minute", 0)

        clock.start_of_next_minute()
        for gateway in gateways:  # the next window admits again, on both
            again = call(gateway, "GET", f"/api/{made.id}/{tail}", headers=AUTH)
            assert again.status_code == 200, again.text
    finally:
        for gateway in gateways:
            gateway.stop()


def test_redis_down_fails_closed_and_recovers_without_restart(
    shared, redis_server, upstream, tmp_path
):
    server, api = shared
    gateway = start_proxy(server, tmp_path / "proxy")
    try:
        made = Setup(api, upstream)
        probe = wait_until_served(gateway, f"/api/{made.id}/probe", AUTH)
        assert probe.status_code == 200, probe.text
        healthy = poll(answering(200, lambda: call(gateway, "GET", HEALTH)))
        assert healthy.json()["status"] == "ok", healthy.text
        assert healthy.json()["redis"]["reachable"] is True
        assert admin_health(server).json()["redis"] == {"status": "ok"}

        redis_server.stop()
        tail = f"down-{uuid.uuid4().hex[:8]}"
        refusals = [
            call(gateway, "GET", f"/api/{made.id}/{tail}", headers=AUTH),
            call(gateway, "POST", f"/api/{made.id}/{tail}", headers=AUTH, data=b'{"a": 1}'),
            call(gateway, "POST", f"/async/{made.id}/{tail}", headers=AUTH, data=b"{}"),
        ]
        for refusal in refusals:
            body = assert_error(refusal, 503, "LIMITS_UNAVAILABLE")
            assert refusal.headers["requestrocket-proxy-code"] == "gateway-error"
            assert "nothing was sent" in body["message"]
            assert redis_server.url not in refusal.text
        entry = logged(api, made, refusals[0].headers["portcullis-request-id"])
        assert entry["proxyData"]["status"] == 503
        assert entry["validationData"]["requestSent"] is False
        assert entry["validationData"]["systemError"] is True

        def degraded():
            response = call(gateway, "GET", HEALTH)
            return response if response.json()["status"] == "degraded" else None

        data_plane = poll(degraded)
        assert data_plane is not None, "the data plane's health never said Redis was down"
        assert data_plane.status_code == 200
        redis_part = data_plane.json()["redis"]
        assert redis_part["configured"] is True and redis_part["reachable"] is False
        assert str(redis_server.port) not in data_plane.text
        admin = admin_health(server)
        assert admin.status_code == 503
        assert admin.json()["status"] == "degraded"
        assert admin.json()["redis"] == {"status": "unreachable"}
        assert str(redis_server.port) not in admin.text

        redis_server.start()  # same port, no restart of the gateway or the admin
        again = f"/api/{made.id}/back"
        back = poll(answering(200, lambda: call(gateway, "GET", again, headers=AUTH)))
        assert back is not None, "requests never flowed again after Redis came back"
        assert received(upstream, f"/base/{tail}") == 0  # nothing got through while down
        assert received(upstream, "/base/back") >= 1
        assert poll(answering(200, lambda: admin_health(server))) is not None
        recovered = poll(lambda: call(gateway, "GET", HEALTH) if ok_health(gateway) else None)
        assert recovered is not None and recovered.json()["redis"]["reachable"] is True
    finally:
        gateway.stop()


def ok_health(gateway) -> bool:
    return call(gateway, "GET", HEALTH).json()["status"] == "ok"
