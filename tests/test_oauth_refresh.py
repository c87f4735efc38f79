"""oauth2 credentials that refresh: access tokens from a stored refresh token, rotated refresh
tokens stored (the old one never used again), a refused one marking the credential as
needing reconnection, one process refreshing at a time, and "pending authorization"."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import oauth_support
from tests.proxy_support import logged, start_proxy
from tests.support import assert_error
from tests.token_support import (
    REDIRECT_URI,
    get,
    latest_token,
    oauth2_secret,
    refresh_token_for,
    serve,
    token_setup,
    wait_expired,
)

oauth_server_process, oauth_server = oauth_support.oauth_server_process, oauth_support.oauth_server
GRANTS = ["authorization_code", "refresh_token"]


@pytest.fixture
def oauth_app(oauth_server):
    return oauth_server.register_client("app", grant_types=GRANTS, redirect_uris=[REDIRECT_URI])


@pytest.fixture
def connected(api, gateway, oauth_server, oauth_app):
    """A proxy whose target credential holds a refresh token obtained by consent."""
    secret = oauth2_secret(
        oauth_server,
        oauth_app,
        grantType="refresh_token",
        refreshToken=refresh_token_for(oauth_server, oauth_app),
    )
    made = token_setup(api, oauth_server, "oauth2", secret)
    oauth_server.reset(counters_only=True)
    return made


def connection(api, made) -> dict:
    path = f"{made.base}/credentials/{made.target_cred['sKey']}"
    return api.get(path).json()["credentials"][0]["credentialConnection"]


def refreshes(oauth) -> list[dict]:
    return [r for r in oauth.stats()["token_log"] if r["grant_type"] == "refresh_token"]


def test_tokens_are_refreshed_and_rotated_refresh_tokens_stored(
    api, gateway, oauth_server, connected
):
    serve(gateway, connected)
    first = get(gateway, connected)
    assert first.status_code == 200, first.text
    assert connection(api, connected)["lastRefreshAt"] is not None
    wait_expired(oauth_server, latest_token(oauth_server))
    second = get(gateway, connected)
    assert second.status_code == 200, second.text
    assert second.json()["token_id"] != first.json()["token_id"]
    done = refreshes(oauth_server)
    assert [r["status"] for r in done] == [200, 200]
    # Each refresh sent the refresh token the one before rotated in; none was sent twice.
    assert [r["refresh_token_state"] for r in done] == ["valid", "valid"]
    assert oauth_server.stats()["refresh_reuse"] == 0
    assert connection(api, connected)["status"] == "connected"


def test_a_refused_refresh_token_needs_reconnecting(
    api, gateway, oauth_server, oauth_app, connected
):
    serve(gateway, connected)
    assert get(gateway, connected).status_code == 200
    oauth_server.revoke_refresh_tokens("app")
    wait_expired(oauth_server, latest_token(oauth_server))
    response = get(gateway, connected)
    body = assert_error(response, 502, "TARGET_CREDENTIAL_REJECTED")
    credential_id = connected.target_cred["sKey"]
    assert credential_id in body["message"] and "needs reconnecting" in body["message"]
    assert "needs reconnecting" in response.headers["requestrocket-proxy-message"]
    state = connection(api, connected)
    assert state["status"] == "needs_reconnect" and "invalid_grant" in state["lastError"]
    notices = api.get(f"{connected.base}/notifications").json()["notifications"]
    notice = next(n for n in notices if n["title"] == "Credential needs reconnecting")
    assert credential_id in notice["message"]
    assert notice["event"] == "credential.needs_reconnect"
    assert notice["pKey"] == connected.client_id
    entry = logged(api, connected, response.headers["portcullis-request-id"])
    assert "needs reconnecting" in entry["proxyData"]["message"]
    # Further requests are refused at once: the provider is not asked again.
    asked = oauth_server.stats()["token_requests"]["total"]
    assert_error(get(gateway, connected), 502, "TARGET_CREDENTIAL_REJECTED")
    assert oauth_server.stats()["token_requests"]["total"] == asked


def test_two_processes_never_refresh_at_once(
    api, admin_server, gateway, oauth_server, connected, tmp_path
):
    second = start_proxy(admin_server, tmp_path / "second")  # no Redis: the store's claim
    try:
        gateways = (gateway, second)
        for each in gateways:
            serve(each, connected)
        wait_expired(oauth_server, latest_token(oauth_server))
        oauth_server.reset(counters_only=True)
        oauth_server.slow(0.3)
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda n: get(gateways[n % 2], connected), range(20)))
        assert [a.status_code for a in answers] == [200] * 20
        stats = oauth_server.stats()
        assert stats["max_concurrent_by_client"]["app"] == 1
        assert stats["refresh_reuse"] == 0
        assert all(r["status"] == 200 for r in refreshes(oauth_server))
    finally:
        second.stop()


def test_a_credential_never_connected_is_pending_authorization(
    api, gateway, oauth_server, oauth_app
):
    secret = oauth2_secret(
        oauth_server,
        oauth_app,
        grantType="authorization_code",
        authorizeUrl=oauth_server.url("/authorize"),
    )
    made = token_setup(api, oauth_server, "oauth2", secret)
    serve(gateway, made)
    response = get(gateway, made)
    body = assert_error(response, 403, "CREDENTIAL_PENDING_AUTHORIZATION")
    assert "credential pending authorization" in body["message"]
    assert oauth_server.stats()["token_requests"]["total"] == 0
    assert oauth_server.stats()["resource"] == {"valid": 0, "rejected": 0}
