"""oauth2 client_credentials target credentials against a real Authlib authorization server.

The gateway mints the access token, caches it, refreshes it with one token request
however many callers wait, injects it, and answers clear 502s when it cannot.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import oauth_support
from tests.proxy_support import free_port, logged, start_proxy, wait_until_served
from tests.support import assert_error
from tests.token_support import (
    AUTH,
    get,
    latest_token,
    oauth2_secret,
    serve,
    token_setup,
    wait_expired,
)

oauth_server_process, oauth_server = oauth_support.oauth_server_process, oauth_support.oauth_server


@pytest.fixture
def registered(oauth_server):
    return oauth_server.register_client("svc", grant_types=["client_credentials"], scope="read")


def test_the_minted_token_reaches_the_target_and_is_reused(api, gateway, oauth_server, registered):
    made = token_setup(api, oauth_server, "oauth2", oauth2_secret(oauth_server, registered))
    serve(gateway, made)
    for _ in range(3):
        response = get(gateway, made, "/orders")
        assert response.status_code == 200, response.text
        assert response.json()["ok"] is True and response.json()["client_id"] == "svc"
    assert oauth_server.stats()["token_requests"]["total"] == 1  # cached, not minted per request
    assert oauth_server.stats()["token_log"][0]["auth"] == "basic"


def test_a_hundred_callers_after_expiry_cause_one_token_request(
    api, gateway, oauth_server, registered
):
    made = token_setup(api, oauth_server, "oauth2", oauth2_secret(oauth_server, registered))
    serve(gateway, made)
    wait_expired(oauth_server, latest_token(oauth_server))
    oauth_server.reset(counters_only=True)
    oauth_server.slow(0.5)  # the one mint is still in flight while the others arrive
    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(lambda _: get(gateway, made, "/burst"), range(100)))
    assert [a.status_code for a in answers] == [200] * 100
    stats = oauth_server.stats()
    assert stats["token_requests"]["total"] == 1
    assert stats["max_concurrent_token_requests"] == 1
    # Every request reached the target with a token the server held valid.
    assert stats["resource"] == {"valid": 100, "rejected": 0}
    assert {a.json()["token_id"] for a in answers} == {latest_token(oauth_server)["token_id"]}


def test_client_secret_post_scope_audience_and_extra_parameters_are_sent(
    api, gateway, oauth_server
):
    registered = oauth_server.register_client(
        "post-svc", grant_types=["client_credentials"], auth_method="client_secret_post"
    )
    secret = oauth2_secret(
        oauth_server,
        registered,
        clientAuthMethod="client_secret_post",
        audience="https://orders.example",
        extraParams={"resource": "orders"},
    )
    made = token_setup(api, oauth_server, "oauth2", {**secret, "scope": "read"})
    serve(gateway, made)
    response = get(gateway, made)
    assert response.status_code == 200, response.text
    assert response.json()["audience"] == "https://orders.example", response.text
    request = oauth_server.stats()["token_log"][0]
    assert request["auth"] == "post" and request["grant_type"] == "client_credentials"
    assert request["params"]["scope"] == "read" and request["params"]["resource"] == "orders"


def test_a_custom_header_and_prefix_carry_the_token(api, gateway, oauth_server, registered):
    secret = oauth2_secret(oauth_server, registered, header="X-Token", prefix="")
    made = token_setup(api, oauth_server, "oauth2", secret)
    serve(gateway, made)
    response = get(gateway, made)
    assert response.status_code == 200 and response.json()["via"] == "x-token"


def test_a_revoked_client_secret_is_a_502_naming_the_credential(
    api, gateway, oauth_server, registered
):
    made = token_setup(api, oauth_server, "oauth2", oauth2_secret(oauth_server, registered))
    oauth_server.revoke_client_secret("svc")
    serve(gateway, made)
    response = get(gateway, made)
    body = assert_error(response, 502, "TARGET_CREDENTIAL_REJECTED")
    credential_id = made.target_cred["sKey"]
    assert credential_id in body["message"] and "invalid_client" in body["message"]
    assert body["error"]["details"]["credentialId"] == credential_id
    assert response.headers["requestrocket-proxy-code"] == "gateway-error"
    assert oauth_server.stats()["resource"] == {"valid": 0, "rejected": 0}  # nothing forwarded
    # Refused again at once, from memory (for 5 s): the provider is not asked again.
    assert_error(get(gateway, made), 502, "TARGET_CREDENTIAL_REJECTED")
    assert oauth_server.stats()["token_requests"]["total"] == 1
    entry = logged(api, made, response.headers["portcullis-request-id"])
    assert entry["proxyData"]["status"] == 502 and entry["targetData"] is None
    assert entry["validationData"]["requestSent"] is False


@pytest.mark.parametrize(
    ("method", "token_url", "says"),
    [
        ("GET", "http://127.0.0.1:{port}/token", "could not be reached"),  # nothing listens
        ("POST", "http://127.0.0.1:{port}/token", "could not be reached"),
        # The SSRF guard covers token requests too: metadata and private addresses refused.
        ("GET", "http://169.254.169.254/latest/token", "may not connect to"),
        ("GET", "http://10.0.0.1/token", "may not connect to"),
    ],
)
def test_the_token_endpoint_down_is_a_502_and_nothing_is_forwarded(
    api, gateway, oauth_server, registered, method, token_url, says
):
    secret = {**oauth2_secret(oauth_server, registered)}
    secret["tokenUrl"] = token_url.format(port=free_port())
    made = token_setup(api, oauth_server, "oauth2", secret)
    serve(gateway, made)
    response = get(gateway, made, method=method, json={"a": 1})
    body = assert_error(response, 502, "TOKEN_ENDPOINT_UNREACHABLE")
    assert made.target_cred["sKey"] in body["message"] and says in body["message"]
    for address in ("127.0.0.1", "169.254", "10.0.0.1"):  # no address, no URL for the caller
        assert address not in body["message"]
    assert oauth_server.stats()["resource"] == {"valid": 0, "rejected": 0}


def test_a_refused_token_is_minted_again_once_for_idempotent_methods(
    api, gateway, oauth_server, registered
):
    made = token_setup(api, oauth_server, "oauth2", oauth2_secret(oauth_server, registered))
    serve(gateway, made)
    assert get(gateway, made).status_code == 200
    oauth_server.revoke_access_tokens("svc")  # the cached token is now refused by the target
    oauth_server.reset(counters_only=True)
    response = get(gateway, made, method="PUT", json={"a": 1})
    assert response.status_code == 200, response.text
    stats = oauth_server.stats()
    assert stats["token_requests"]["total"] == 1
    assert stats["resource"] == {"valid": 1, "rejected": 1}
    # A POST is not repeated: the caller gets the target's 401, and the next GET mints anew.
    oauth_server.revoke_access_tokens("svc")
    oauth_server.reset(counters_only=True)
    assert get(gateway, made, method="POST", json={"a": 1}).status_code == 401
    assert oauth_server.stats()["token_requests"]["total"] == 0
    assert get(gateway, made).status_code == 200
    assert oauth_server.stats()["token_requests"]["total"] == 1


def test_a_slow_token_endpoint_times_out_and_the_next_request_tries_again(
    api, admin_server, oauth_server, registered, tmp_path
):
    impatient = start_proxy(admin_server, tmp_path, "--set", "portcullis_token_timeout_ms=300")
    try:
        made = token_setup(api, oauth_server, "oauth2", oauth2_secret(oauth_server, registered))
        oauth_server.slow(2)
        response = wait_until_served(impatient, f"/api/{made.id}/x", AUTH)
        body = assert_error(response, 502, "TOKEN_ENDPOINT_UNREACHABLE")
        assert "did not answer within 0.3s" in body["message"]
        assert oauth_server.stats()["resource"] == {"valid": 0, "rejected": 0}
        oauth_server.slow(0)  # a passing failure is not held: the next request mints
        assert get(impatient, made).status_code == 200
    finally:
        impatient.stop()
