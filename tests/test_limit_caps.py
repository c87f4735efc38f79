"""Platform maxima cap every limit, also limits saved while the maxima were higher.

A client's defaults are copied into each new proxy, the proxy's own values
override them, and both are capped by `PORTCULLIS_MAX_REQUESTS_PER_MINUTE` /
`_PER_DAY`. Here the maxima are lowered after a client and a proxy were saved
under the defaults (1000 / 20000): a second admin on the same store and a
gateway both run with the lower maxima (5 / 50). New proxies get the capped
defaults, every write above the new maxima is refused naming the field, and
the gateway enforces the cap on the proxy saved before.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from tests.clock_support import TestClock
from tests.proxy_support import CALLER_KEY, Setup, call, start_proxy, wait_until_served
from tests.support import Api, assert_invalid, proxy_body, proxy_parts, start_admin
from tests.test_limit import current_window

AUTH = {"X-API-Key": CALLER_KEY}
LOWER = {"PORTCULLIS_MAX_REQUESTS_PER_MINUTE": "5", "PORTCULLIS_MAX_REQUESTS_PER_DAY": "50"}
LIMITS = ("proxyMaxRequestsPerMinute", "proxyMaxRequestsPerDay")


@pytest.fixture
def lowered(admin_server, tmp_path):
    """An admin on the shared store started with the lower maxima."""
    server = start_admin(tmp_path / "lowered", DATABASE_URL=admin_server.database_url, **LOWER)
    yield server
    server.stop()


def test_lowered_maxima_cap_saved_defaults_writes_and_enforcement(
    api, owner, upstream, admin_server, lowered, tmp_path
):
    made = Setup(api, upstream, proxyMaxRequestsPerMinute=800)  # saved under 1000 / 20000
    config = f"{made.base}/configuration"
    saved = {"requestsPerMinute": 900, "requestsPerDay": 15000}
    assert api.put(config, json={"configuration": {"limits": saved}}).status_code == 200
    low = Api(lowered.base_url, owner.token)
    proxies = f"{made.base}/proxies"

    # The client's saved defaults (900 / 15000) are capped when copied into a new proxy.
    created = low.post(proxies, json=proxy_body(proxy_parts(low, made.client_id)))
    assert created.status_code == 201, created.text
    assert [created.json()["proxies"][0][k] for k in LIMITS] == [5, 50]
    # A proxy's own values override the client's, within the maxima.
    own = proxy_body(proxy_parts(low, made.client_id), proxyMaxRequestsPerMinute=2)
    assert [low.post(proxies, json=own).json()["proxies"][0][k] for k in LIMITS] == [2, 50]

    # Every write above the lowered maxima is refused, naming the field; nothing changes.
    above = proxy_body(proxy_parts(low, made.client_id), proxyMaxRequestsPerMinute=6)
    assert_invalid(low.post(proxies, json=above), "proxyMaxRequestsPerMinute")
    one = f"{proxies}/{made.id}"
    assert_invalid(low.put(one, json={"proxyMaxRequestsPerDay": 51}), "proxyMaxRequestsPerDay")
    too_high = {"configuration": {"limits": {"requestsPerMinute": 6}}}
    assert_invalid(low.put(config, json=too_high), "configuration")
    assert_invalid(low.put(made.base, json=too_high), "configuration")
    assert [low.get(one).json()["proxies"][0][k] for k in LIMITS] == [800, 20000]
    current = low.get(made.base).json()["clients"][0]["configuration"]["limits"]
    assert current == saved

    # The gateway caps the proxy saved at 800 / 20000 to 5 / 50.
    lowered_env = {**admin_server.env, **LOWER}
    clock = TestClock(tmp_path / "clock")
    on_lowered_env = dataclasses.replace(admin_server, env=lowered_env)
    gateway = start_proxy(on_lowered_env, tmp_path / "proxy", *clock.args)
    try:
        wait_until_served(gateway, f"/api/{made.id}/probe", AUTH)
        clock.start_of_next_minute()
        path = f"/api/{made.id}/capped-{uuid.uuid4().hex[:8]}"
        answers = [call(gateway, "GET", path, headers=AUTH) for _ in range(6)]
        assert [r.status_code for r in answers] == [200] * 5 + [429]
        assert answers[0].headers["RateLimit-Policy"] == '"minute";q=5;w=60, "day";q=50;w=86400'
        assert current_window(answers[-1])[:2] == ("minute", 0)
    finally:
        gateway.stop()
