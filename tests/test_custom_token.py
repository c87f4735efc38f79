"""customToken target credentials: a token request the credential describes, against the
Authlib test server's `/custom/*` endpoints (which check a username and password)."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import oauth_support
from tests.oauth_support import CUSTOM_PASSWORD, CUSTOM_USERNAME
from tests.support import assert_error
from tests.token_support import get, latest_token, serve, token_setup, wait_expired

oauth_server_process, oauth_server = oauth_support.oauth_server_process, oauth_support.oauth_server
FIELDS = {"user": CUSTOM_USERNAME, "pass": CUSTOM_PASSWORD}


def custom_secret(oauth, path: str = "/custom/token", **extra) -> dict:
    return {
        "tokenUrl": oauth.url(path),
        "fields": FIELDS,
        "body": {"username": "{{fields.user}}", "password": "{{ fields.pass }}"},
        "tokenPath": "data.token",
        "ttlFrom": "path",
        "ttlPath": "data.ttl",
        **extra,
    }


def custom_stats(oauth) -> dict:
    return oauth.stats()["custom_token_requests"]


def test_the_token_is_cached_refreshed_after_its_ttl_and_minted_once(api, gateway, oauth_server):
    made = token_setup(api, oauth_server, "customToken", custom_secret(oauth_server))
    serve(gateway, made)
    first = get(gateway, made)
    assert first.status_code == 200, first.text
    assert get(gateway, made).json()["token_id"] == first.json()["token_id"]
    assert custom_stats(oauth_server)["total"] == 1  # cached for its 2 s
    log = oauth_server.stats()["custom_log"][0]
    assert log["method"] == "POST" and log["content_type"] == "application/json"

    wait_expired(oauth_server, latest_token(oauth_server, "custom"))
    oauth_server.slow(0.5)  # the new mint is in flight while the others arrive
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(lambda _: get(gateway, made), range(30)))
    assert [a.status_code for a in answers] == [200] * 30
    stats = custom_stats(oauth_server)
    assert stats["total"] == 2 and stats["max_concurrent"] == 1
    renewed = {a.json()["token_id"] for a in answers}
    assert renewed == {latest_token(oauth_server, "custom")["token_id"]}
    assert first.json()["token_id"] not in renewed
    assert oauth_server.stats()["resource"]["rejected"] == 0


@pytest.mark.parametrize(
    ("extra", "via"),
    [
        # The token in a response header, a fixed lifetime, sent as a query parameter.
        (
            {
                "tokenLocation": "header",
                "tokenHeader": "X-Issued-Token",
                "ttlFrom": "fixed",
                "ttlSeconds": 60,
                "injectIn": "query",
                "queryParam": "access_token",
            },
            "query",
        ),
        # A form body, a bare token in a header of its own.
        ({"bodyFormat": "form", "header": "X-Token", "prefix": ""}, "x-token"),
    ],
)
def test_where_the_token_is_read_and_how_it_is_sent(api, gateway, oauth_server, extra, via):
    path = "/custom/token-header" if extra.get("tokenLocation") == "header" else "/custom/token"
    made = token_setup(api, oauth_server, "customToken", custom_secret(oauth_server, path, **extra))
    serve(gateway, made)
    response = get(gateway, made)
    assert response.status_code == 200, response.text
    assert response.json()["via"] == via


def test_a_jwt_lifetime_is_read_from_its_exp(api, gateway, oauth_server):
    secret = custom_secret(oauth_server, "/custom/token-jwt", ttlFrom="jwtExp")
    del secret["ttlPath"]
    made = token_setup(api, oauth_server, "customToken", secret)
    serve(gateway, made)
    assert get(gateway, made).status_code == 200
    token = latest_token(oauth_server, "custom")
    wait_expired(oauth_server, token)
    response = get(gateway, made)
    assert response.status_code == 200 and response.json()["token_id"] != token["token_id"]


def test_fields_fill_headers_and_a_get_sends_its_form_as_the_query(api, gateway, oauth_server):
    basic = base64.b64encode(f"{CUSTOM_USERNAME}:{CUSTOM_PASSWORD}".encode()).decode()
    secret = custom_secret(
        oauth_server,
        method="GET",
        fields={"basic": basic},
        headers={"Authorization": "Basic {{fields.basic}}"},
    )
    del secret["body"]
    made = token_setup(api, oauth_server, "customToken", secret)
    serve(gateway, made)
    assert get(gateway, made).status_code == 200
    assert oauth_server.stats()["custom_log"][0]["method"] == "GET"


def test_refused_credentials_are_a_502_naming_the_credential(api, gateway, oauth_server):
    secret = custom_secret(oauth_server, fields={"user": CUSTOM_USERNAME, "pass": "wrong"})
    made = token_setup(api, oauth_server, "customToken", secret)
    serve(gateway, made)
    response = get(gateway, made)
    body = assert_error(response, 502, "TARGET_CREDENTIAL_REJECTED")
    assert made.target_cred["sKey"] in body["message"] and "wrong" not in response.text
    assert oauth_server.stats()["resource"] == {"valid": 0, "rejected": 0}
