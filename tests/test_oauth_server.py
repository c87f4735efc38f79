"""The tests' OAuth2 server (tests/oauth_server.py) behaves as its docstring says.

Other tests rely on it to prove the gateway right, so it must itself refuse what a real
authorization server refuses: wrong secrets, replayed codes, wrong PKCE verifiers, used
refresh tokens, expired and revoked tokens. Talks to the real server process over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from tests.oauth_server import DEFAULT_CUSTOM_PASSWORD as CUSTOM_PASSWORD
from tests.oauth_server import DEFAULT_CUSTOM_USERNAME as CUSTOM_USERNAME
from tests.support import answering, poll

if TYPE_CHECKING:
    from tests.oauth_support import OAuthServer

pytest_plugins = ["tests.oauth_support"]  # the `oauth_server` fixture

REDIRECT = "http://127.0.0.1:9/callback"


def token(server: OAuthServer, data: dict, auth=None) -> requests.Response:
    return requests.post(server.url("/token"), data=data, auth=auth, timeout=10)


def resource(server: OAuthServer, value: str, place: str = "bearer") -> requests.Response:
    headers, params = {}, {}
    if place == "bearer":
        headers["Authorization"] = f"Bearer {value}"
    elif place == "bare":
        headers["Authorization"] = value
    elif place == "x-token":
        headers["X-Token"] = value
    else:
        params["token"] = value
    return requests.get(server.url("/resource/items/7"), headers=headers, params=params, timeout=10)


def assert_oauth_error(response: requests.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def consent(server: OAuthServer, decision: str, **params) -> dict:
    """Show the consent page, press `decision`; the redirect's query parameters."""
    query = {"response_type": "code", "redirect_uri": REDIRECT, "state": "s-1", **params}
    page = requests.get(server.url("/authorize"), params=query, timeout=10)
    assert page.status_code == 200, page.text
    assert "id='allow'" in page.text and "id='deny'" in page.text
    answer = requests.post(
        server.url("/authorize"),
        params=query,
        data={"decision": decision},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    location = urlparse(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def test_client_credentials_tokens_work_expire_and_follow_the_secret(oauth_server):
    client = oauth_server.register_client("svc", scope="read write")
    oauth_server.set_lifetime(1)
    basic = token(oauth_server, {"grant_type": "client_credentials", "scope": "read"}, client)
    assert basic.status_code == 200, basic.text
    issued = basic.json()
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 1
    assert issued["scope"] == "read" and "refresh_token" not in issued
    for place in ("bearer", "bare", "x-token", "query"):
        answer = resource(oauth_server, issued["access_token"], place)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["ok"] and body["client_id"] == "svc" and body["path"] == "/resource/items/7"
        assert body["token_id"] and issued["access_token"] not in answer.text

    # The method the client registered is the only one accepted; a wrong secret is refused.
    post = {"grant_type": "client_credentials", "client_id": "svc"}
    assert_oauth_error(token(oauth_server, {**post, "client_secret": client.client_secret}),
                       401, "invalid_client")  # fmt: skip
    assert_oauth_error(token(oauth_server, post, ("svc", "wrong")), 401, "invalid_client")
    new_secret = oauth_server.revoke_client_secret("svc")
    assert_oauth_error(token(oauth_server, post, client), 401, "invalid_client")
    assert token(oauth_server, post, ("svc", new_secret)).status_code == 200

    # Expired, revoked and unknown tokens get 401 invalid_token.
    expired = poll(answering(401, lambda: resource(oauth_server, issued["access_token"])))
    assert expired is not None, "the 1 s token never expired"
    fresh = token(oauth_server, post, ("svc", new_secret)).json()["access_token"]
    assert resource(oauth_server, fresh).status_code == 200
    assert oauth_server.revoke_access_tokens("svc") >= 1
    for value in (issued["access_token"], fresh, "never-issued"):
        rejected = resource(oauth_server, value)
        assert rejected.status_code == 401
        assert 'error="invalid_token"' in rejected.headers["WWW-Authenticate"]

    stats = oauth_server.stats()
    assert stats["token_requests"]["by_grant"] == {"client_credentials": 6}
    assert stats["token_requests"]["errors"] == {"invalid_client": 3}
    assert stats["resource"]["valid"] >= 5 and stats["resource"]["rejected"] >= 4
    first = next(t for t in stats["tokens"] if t["client_id"] == "svc")
    assert first["scope"] == "read" and first["expires_at"] > first["issued_at"]
    assert issued["access_token"] in oauth_server.issued_secrets()["access_tokens"]


def test_authorization_code_with_pkce_codes_refresh_rotation_and_revocation(oauth_server):
    oauth_server.register_client("app", None, redirect_uris=[REDIRECT])  # public: PKCE
    verifier, challenge = pkce_pair()
    pkce = {"client_id": "app", "scope": "read", "code_challenge": challenge}
    pkce["code_challenge_method"] = "S256"
    assert consent(oauth_server, "deny", **pkce)["error"] == "access_denied"

    exchange = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, "client_id": "app"}
    wrong = consent(oauth_server, "allow", **pkce)
    assert wrong["state"] == "s-1"
    refused = token(oauth_server, {**exchange, "code": wrong["code"], "code_verifier": "x" * 50})
    assert_oauth_error(refused, 400, "invalid_grant")
    # A code is single use even when the first exchange failed.
    again = token(oauth_server, {**exchange, "code": wrong["code"], "code_verifier": verifier})
    assert_oauth_error(again, 400, "invalid_grant")
    missing = token(
        oauth_server, {**exchange, "code": consent(oauth_server, "allow", **pkce)["code"]}
    )
    assert_oauth_error(missing, 400, "invalid_request")

    code = consent(oauth_server, "allow", **pkce)["code"]
    issued = token(oauth_server, {**exchange, "code": code, "code_verifier": verifier}).json()
    assert issued["refresh_token"] and issued["expires_in"] == 2
    assert resource(oauth_server, issued["access_token"]).status_code == 200

    refresh = {"grant_type": "refresh_token", "client_id": "app"}
    rotated = token(oauth_server, {**refresh, "refresh_token": issued["refresh_token"]}).json()
    assert rotated["refresh_token"] != issued["refresh_token"]
    reused = token(oauth_server, {**refresh, "refresh_token": issued["refresh_token"]})
    assert_oauth_error(reused, 400, "invalid_grant")
    newest = token(oauth_server, {**refresh, "refresh_token": rotated["refresh_token"]}).json()
    assert resource(oauth_server, newest["access_token"]).status_code == 200

    # A replayed code revokes what it was exchanged for (RFC 6749 §4.1.2).
    replay = token(oauth_server, {**exchange, "code": code, "code_verifier": verifier})
    assert_oauth_error(replay, 400, "invalid_grant")
    assert resource(oauth_server, issued["access_token"]).status_code == 401

    assert oauth_server.revoke_refresh_tokens("app") >= 1
    revoked = token(oauth_server, {**refresh, "refresh_token": newest["refresh_token"]})
    assert_oauth_error(revoked, 400, "invalid_grant")

    stats = oauth_server.stats()
    assert stats["refresh_reuse"] == 1
    assert stats["authorize"] == {"pages": 4, "allowed": 3, "denied": 1}
    assert all("code_verifier" not in query for query in stats["authorize_log"])
    refreshes = [r for r in stats["token_log"] if r["grant_type"] == "refresh_token"]
    assert [r["refresh_token_state"] for r in refreshes] == ["valid", "rotated", "valid", "revoked"]
    assert all(r["params"]["refresh_token"] == "<present>" for r in refreshes)


def test_confidential_client_without_pkce_and_without_rotation(oauth_server):
    client = oauth_server.register_client(
        "web",
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token"],
        auth_method="client_secret_post",
    )
    oauth_server.set_rotation(False)
    code = consent(oauth_server, "allow", client_id="web", scope="a b")["code"]
    auth = {"client_id": "web", "client_secret": client.client_secret}
    exchange = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, "code": code}
    issued = token(oauth_server, {**exchange, **auth, "audience": "api://x", "resource": "r1"})
    assert issued.status_code == 200, issued.text
    refresh = {"grant_type": "refresh_token", "refresh_token": issued.json()["refresh_token"]}
    for _ in range(2):  # not rotated: the same refresh token keeps working
        answer = token(oauth_server, {**refresh, **auth})
        assert answer.status_code == 200 and "refresh_token" not in answer.json()
    params = oauth_server.stats()["token_log"][0]["params"]
    assert params["audience"] == "api://x" and params["resource"] == "r1"
    assert params["client_secret"] == "<present>"


@pytest.mark.parametrize("variant", ["token", "token-header", "token-jwt"])
def test_custom_token_endpoints(oauth_server, variant):
    oauth_server.set_custom_ttl(5)
    url = oauth_server.url(f"/custom/{variant}")
    refused = requests.post(url, json={"username": CUSTOM_USERNAME, "password": "no"}, timeout=10)
    assert refused.status_code == 401
    answer = requests.post(url, data={"username": CUSTOM_USERNAME, "password": CUSTOM_PASSWORD})
    assert answer.status_code == 200, answer.text
    if variant == "token":
        assert answer.json()["data"]["ttl"] == 5
        value = answer.json()["data"]["token"]
    elif variant == "token-header":
        value = answer.headers["X-Issued-Token"]
        assert answer.headers["X-Token-TTL"] == "5"
    else:
        value = answer.json()["data"]["token"]
        payload = value.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["exp"] - claims["iat"] == 5
    hit = resource(oauth_server, value, "x-token")
    assert hit.status_code == 200 and hit.json()["kind"] == "custom"
    counts = oauth_server.stats()["custom_token_requests"]
    assert (counts["total"], counts["succeeded"], counts["rejected"]) == (2, 1, 1)


def test_slow_down_holds_token_requests_so_overlap_is_counted(oauth_server):
    client = oauth_server.register_client("svc")
    oauth_server.slow(20)
    answers: list[int] = []
    callers = [
        threading.Thread(
            target=lambda: answers.append(
                token(oauth_server, {"grant_type": "client_credentials"}, client).status_code
            )
        )
        for _ in range(3)
    ]
    for caller in callers:
        caller.start()
    held = poll(lambda: oauth_server.stats()["in_flight_token_requests"] == 3 or None)
    oauth_server.release()
    for caller in callers:
        caller.join(timeout=15)
    assert held and answers == [200, 200, 200]
    assert oauth_server.stats()["max_concurrent_token_requests"] == 3


def test_control_errors_name_the_field(oauth_server):
    bad = [
        ("/__control/clients", {"client_id": ""}, "client_id"),
        ("/__control/clients", {"client_id": "x", "grant_types": ["password"]}, "grant_types"),
        ("/__control/clients", {"client_id": "x", "client_secret": None,
                                "token_endpoint_auth_method": "client_secret_basic"},
         "token_endpoint_auth_method"),
        ("/__control/config", {"access_lifetime": 0}, "access_lifetime"),
        ("/__control/config", {"colour": 1}, "colour"),
        ("/__control/slow", {"seconds": "soon"}, "seconds"),
    ]  # fmt: skip
    for path, body, name in bad:
        answer = requests.post(oauth_server.url(path), json=body, timeout=10)
        assert answer.status_code == 400, (path, body, answer.text)
        assert answer.json()["field"] == name
