"""Test support for minted target tokens: proxies toward the OAuth2 test server's /resource."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import requests

from tests.oauth_support import OAuthServer
from tests.proxy_support import CALLER_KEY, Setup, call, wait_until_served

AUTH = {"X-API-Key": CALLER_KEY}
DEADLINE_S = 15


def token_setup(api, oauth: OAuthServer, auth_type: str, secret: dict, **proxy_fields) -> Setup:
    """A client whose proxy forwards to the server's protected `/resource` with a target
    credential of `auth_type` (`oauth2`, `customToken`) holding `secret`."""
    target = SimpleNamespace(base_url=oauth.url("/resource"))
    return Setup(
        api,
        target,
        target={"credentialAuthType": auth_type, "credentialSecret": secret},
        **proxy_fields,
    )


def oauth2_secret(oauth: OAuthServer, client, **extra) -> dict:
    return {
        "tokenUrl": oauth.url("/token"),
        "clientId": client.client_id,
        "clientSecret": client.client_secret,
        **extra,
    }


def serve(gateway, made: Setup) -> None:
    """Wait until the gateway serves the proxy (any answer but 404)."""
    response = wait_until_served(gateway, f"/api/{made.id}/ping", AUTH)
    assert response.status_code != 404, response.text


def get(gateway, made: Setup, path: str = "/x", method: str = "GET", **kwargs):
    return call(gateway, method, f"/api/{made.id}{path}", headers=AUTH, **kwargs)


def wait_until(condition, what: str, timeout: float = DEADLINE_S):
    """Poll `condition()` until it returns something truthy (bounded); that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)  # polling a real server's state, bounded by the deadline


def latest_token(oauth: OAuthServer, kind: str = "oauth") -> dict:
    return [t for t in oauth.stats()["tokens"] if t["kind"] == kind][-1]


def wait_expired(oauth: OAuthServer, token: dict) -> None:
    """Until the server holds `token` expired (its clock and ours are the same host's)."""
    wait_until(lambda: time.time() >= token["expires_at"], f"token {token['token_id']} to expire")


REDIRECT_URI = "http://127.0.0.1/callback"


def refresh_token_for(oauth: OAuthServer, client, scope: str = "read") -> str:
    """A refresh token of `client` (registered for authorization_code with REDIRECT_URI),
    obtained as a person would: consent at the server, then the code exchanged with PKCE."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    consent = requests.post(
        oauth.url("/authorize"),
        params=query,
        data={"decision": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    assert consent.status_code == 302, consent.text
    code = parse_qs(urlsplit(consent.headers["Location"]).query)["code"][0]
    answer = requests.post(
        oauth.url("/token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(client.client_id, client.client_secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["refresh_token"]
