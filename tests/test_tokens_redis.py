"""Minted target tokens shared through a real redis-server by two real mitmdump processes:
one token request serves both, and Redis holds the token sealed, never in clear."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests import oauth_support
from tests.async_support import user_api
from tests.proxy_support import start_proxies
from tests.redis_support import RedisServer
from tests.support import start_admin
from tests.token_support import (
    get,
    latest_token,
    oauth2_secret,
    serve,
    token_setup,
    wait_expired,
)

oauth_server_process, oauth_server = oauth_support.oauth_server_process, oauth_support.oauth_server


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """An admin, a Redis and two data planes sharing both."""
    directory = tmp_path_factory.mktemp("tokens-redis")
    redis_server = RedisServer(directory / "redis").start()
    server = start_admin(directory / "admin", PORTCULLIS_REDIS_URL=redis_server.url)
    gateways = []
    try:
        # A patient Redis timeout for the limit counters: 40 callers at once on a busy test
        # machine are not what this module tests.
        patient = ("--set", "portcullis_redis_timeout_ms=3000")
        gateways = start_proxies(server, [directory / f"proxy{n}" for n in (1, 2)], *patient)
        yield user_api(server), gateways, redis_server
    finally:
        for gateway in gateways:
            gateway.stop()
        server.stop()
        redis_server.stop()


def test_two_processes_share_one_minted_token_sealed_in_redis(shared, oauth_server):
    api, gateways, redis_server = shared
    client = oauth_server.register_client("shared", grant_types=["client_credentials"])
    made = token_setup(api, oauth_server, "oauth2", oauth2_secret(oauth_server, client))
    for gateway in gateways:
        serve(gateway, made)
    assert oauth_server.stats()["token_requests"]["total"] == 1  # the second one reused it

    wait_expired(oauth_server, latest_token(oauth_server))
    oauth_server.reset(counters_only=True)
    oauth_server.slow(0.5)  # one process mints while both have callers waiting
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(lambda n: get(gateways[n % 2], made), range(40)))
    assert [a.status_code for a in answers] == [200] * 40, [
        a.text for a in answers if a.status_code != 200
    ]
    stats = oauth_server.stats()
    assert stats["token_requests"]["total"] == 1
    assert stats["resource"] == {"valid": 40, "rejected": 0}

    raw = redis.Redis.from_url(redis_server.url).get(f"portcullis:token:{made.target_cred['sKey']}")
    assert raw, "the token is kept in Redis"
    issued = oauth_server.issued_secrets()
    for secret in (*issued["access_tokens"], *issued["client_secrets"]):
        assert secret.encode() not in raw


def test_a_refusal_while_another_process_waits_is_answered_by_both(shared, oauth_server):
    api, gateways, _redis_server = shared
    client = oauth_server.register_client("refused", grant_types=["client_credentials"])
    made = token_setup(api, oauth_server, "oauth2", oauth2_secret(oauth_server, client))
    oauth_server.revoke_client_secret("refused")
    # Served once a proxy made after it is (no token asked for yet: a bearer credential).
    probe = token_setup(api, oauth_server, "bearer", {"token": "probe-token"})
    for gateway in gateways:
        serve(gateway, probe)
    oauth_server.slow(0.5)  # one process holds the lock while the other waits on it
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda gateway: get(gateway, made), gateways))
    for response in answers:  # neither waits for a token that never comes
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "TARGET_CREDENTIAL_REJECTED"
    assert oauth_server.stats()["token_requests"]["total"] == 2  # each tried once
