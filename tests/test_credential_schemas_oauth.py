"""oauth2 and customToken credentials through the Core API: every field, and bad input refused
with 400 INVALID_INPUT naming the field (never a 500, never a secret echoed)."""

from __future__ import annotations

import pytest

from tests.support import assert_invalid, create

TOKEN_URL = "https://auth.example/oauth/token"
AUTHORIZE_URL = "https://auth.example/oauth/authorize"
SECRET = "cs-9f8e7d6c5b4a"


@pytest.fixture
def creds(client_id) -> str:
    return f"/api/clients/{client_id}/credentials"


def body(auth: str, secret) -> dict:
    return {
        "credentialName": f"target {auth}",
        "credentialType": "target",
        "credentialAuthType": auth,
        "credentialRegion": "us-east-1",
        "credentialSecret": secret,
    }


def test_oauth2_client_credentials_with_every_field(api, creds):
    secret = {
        "grantType": "client_credentials",
        "tokenUrl": TOKEN_URL,
        "clientId": "app-1",
        "clientSecret": SECRET,
        "clientAuthMethod": "client_secret_post",
        "scope": "read write",
        "audience": "https://api.example",
        "extraParams": {"resource": "https://api.example/v2"},
        "header": "X-Access-Token",
        "prefix": "",
    }
    made = create(api, creds, body("oauth2", secret), "credentials")
    assert made["credentialSettings"] == {
        "grantType": "client_credentials",
        "tokenUrl": TOKEN_URL,
        "authorizeUrl": None,
        "clientId": "app-1",
        "clientAuthMethod": "client_secret_post",
        "usePkce": False,
        "scope": "read write",
        "audience": "https://api.example",
        "extraParams": {"resource": "https://api.example/v2"},
        "header": "X-Access-Token",
        "prefix": "",
    }
    assert made["credentialTemporary"] is False and "credentialConnection" not in made
    assert SECRET not in api.get(creds).text
    assert SECRET not in api.get(f"{creds}/{made['credentialId']}").text


def test_oauth2_authorization_code_is_pending_and_hidden(api, creds):
    secret = {
        "grantType": "authorization_code",
        "tokenUrl": TOKEN_URL,
        "authorizeUrl": AUTHORIZE_URL,
        "clientId": "app-1",
    }
    made = create(api, creds, body("oauth2", secret), "credentials")
    assert made["credentialSettings"]["clientAuthMethod"] == "none"
    assert made["credentialSettings"]["usePkce"] is True
    assert made["credentialTemporary"] is True
    assert made["credentialConnection"] == {
        "status": "pending",
        "connectedAt": None,
        "lastRefreshAt": None,
        "accessExpiresAt": None,
        "lastError": None,
        "lastErrorAt": None,
    }
    assert api.get(creds).json()["credentials"] == []
    listed = api.get(creds + "?includeTemporary=true").json()["credentials"]
    assert listed == [made]
    assert api.get(f"{creds}/{made['credentialId']}").json()["credentials"] == [made]
    put_back = api.put(f"{creds}/{made['credentialId']}", json={**made, "credentialName": "B"})
    assert put_back.status_code == 200, put_back.text  # the connection is read-only: ignored
    assert put_back.json()["credentials"][0]["credentialConnection"]["status"] == "pending"


def test_custom_token_with_every_field(api, creds):
    secret = {
        "tokenUrl": TOKEN_URL,
        "method": "POST",
        "fields": {"username": "svc", "password": SECRET},
        "headers": {"X-Client": "{{fields.username}}"},
        "body": {"user": "{{fields.username}}", "pass": "{{ fields.password }}", "n": 1},
        "bodyFormat": "form",
        "tokenLocation": "header",
        "tokenHeader": "X-Issued-Token",
        "ttlFrom": "path",
        "ttlPath": "data.ttl",
        "injectIn": "query",
        "queryParam": "token",
    }
    made = create(api, creds, body("customToken", secret), "credentials")
    assert made["credentialSettings"] == {
        "tokenUrl": TOKEN_URL,
        "method": "POST",
        "bodyFormat": "form",
        "tokenLocation": "header",
        "tokenPath": "access_token",
        "ttlFrom": "path",
        "ttlSeconds": 3600,
        "injectIn": "query",
        "header": "Authorization",
        "prefix": "Bearer",
        "tokenHeader": "X-Issued-Token",
        "ttlPath": "data.ttl",
        "queryParam": "token",
        "fieldNames": ["password", "username"],
    }
    assert SECRET not in api.get(creds).text


def test_custom_token_jwt_lifetime_and_json_string_body(api, creds):
    secret = {
        "tokenUrl": TOKEN_URL,
        "fields": {"key": SECRET},
        "body": '{"apiKey": "{{fields.key}}"}',
        "tokenPath": "data.token",
        "ttlFrom": "jwtExp",
    }
    made = create(api, creds, body("customToken", secret), "credentials")
    settings = made["credentialSettings"]
    assert settings["bodyFormat"] == "json" and settings["ttlFrom"] == "jwtExp"
    assert settings["tokenPath"] == "data.token"


AC = {"grantType": "authorization_code", "tokenUrl": TOKEN_URL, "authorizeUrl": AUTHORIZE_URL}
CC = {"tokenUrl": TOKEN_URL, "clientId": "c", "clientSecret": "s"}
CT = {"tokenUrl": TOKEN_URL}

INVALID = {
    # oauth2: wrong types
    "oauth2-token-url-number": ("oauth2", {**CC, "tokenUrl": 5}, "tokenUrl"),
    "oauth2-client-id-list": ("oauth2", {**CC, "clientId": ["c"]}, "clientId"),
    "oauth2-pkce-string": ("oauth2", {**AC, "clientId": "c", "usePkce": "yes"}, "usePkce"),
    "oauth2-extra-not-map": ("oauth2", {**CC, "extraParams": ["a"]}, "extraParams"),
    "oauth2-extra-value-number": ("oauth2", {**CC, "extraParams": {"a": 1}}, "extraParams"),
    # oauth2: bad URLs
    "oauth2-authorize-url-ftp": (
        "oauth2", {**AC, "clientId": "c", "authorizeUrl": "ftp://a.example/x"}, "authorizeUrl"
    ),
    "oauth2-token-url-relative": ("oauth2", {**CC, "tokenUrl": "/token"}, "tokenUrl"),
    "oauth2-token-url-js": ("oauth2", {**CC, "tokenUrl": "javascript:alert(1)"}, "tokenUrl"),
    # oauth2: grants and what they need
    "oauth2-unknown-grant": ("oauth2", {**CC, "grantType": "password"}, "grantType"),
    "oauth2-implicit-grant": ("oauth2", {**CC, "grantType": "implicit"}, "grantType"),
    "oauth2-code-without-authorize-url": (
        "oauth2", {"grantType": "authorization_code", "tokenUrl": TOKEN_URL, "clientId": "c"},
        "authorizeUrl",
    ),
    "oauth2-authorize-url-on-client-credentials": (
        "oauth2", {**CC, "authorizeUrl": AUTHORIZE_URL}, "authorizeUrl"
    ),
    "oauth2-pkce-on-client-credentials": ("oauth2", {**CC, "usePkce": True}, "usePkce"),
    "oauth2-public-client-without-pkce": (
        "oauth2", {**AC, "clientId": "c", "usePkce": False}, "usePkce"
    ),
    "oauth2-basic-without-secret": (
        "oauth2", {**AC, "clientId": "c", "clientAuthMethod": "client_secret_basic"},
        "clientSecret",
    ),
    "oauth2-none-with-secret": (
        "oauth2", {**AC, "clientId": "c", "clientSecret": "s", "clientAuthMethod": "none"},
        "clientSecret",
    ),
    "oauth2-client-credentials-public": (
        "oauth2", {"tokenUrl": TOKEN_URL, "clientId": "c", "clientAuthMethod": "none"},
        "clientSecret",
    ),
    "oauth2-unknown-auth-method": (
        "oauth2", {**CC, "clientAuthMethod": "private_key_jwt"}, "clientAuthMethod"
    ),
    "oauth2-refresh-token-on-code-grant": (
        "oauth2", {**AC, "clientId": "c", "refreshToken": "r"}, "refreshToken"
    ),
    "oauth2-extra-overrides-grant": (
        "oauth2", {**CC, "extraParams": {"grant_type": "password"}}, "extraParams"
    ),
    "oauth2-extra-overrides-secret": (
        "oauth2", {**CC, "extraParams": {"Client_Secret": "x"}}, "extraParams"
    ),
    "oauth2-header-managed": ("oauth2", {**CC, "header": "Host"}, "header"),
    "oauth2-prefix-crlf": ("oauth2", {**CC, "prefix": "Bearer\r\nX: 1"}, "prefix"),
    "oauth2-client-id-nul": ("oauth2", {**CC, "clientId": "c\x00"}, "clientId"),
    "oauth2-unknown-field": ("oauth2", {**CC, "password": "p"}, "password"),
    # customToken: fields and their references
    "ct-unknown-field-in-header": (
        "customToken", {**CT, "headers": {"X-Key": "{{fields.key}}"}}, "headers.X-Key"
    ),
    "ct-unknown-field-in-body": (
        "customToken", {**CT, "fields": {"a": "1"}, "body": {"x": {"y": "{{fields.b}}"}}}, "body"
    ),
    "ct-unknown-field-in-string-body": (
        "customToken", {**CT, "body": "user={{fields.user}}"}, "body"
    ),
    "ct-unsupported-placeholder": (
        "customToken", {**CT, "fields": {"a": "1"}, "body": {"x": "{{secret.a}}"}}, "body"
    ),
    "ct-field-name-bad": ("customToken", {**CT, "fields": {"a b": "1"}}, "fields"),
    "ct-field-value-number": ("customToken", {**CT, "fields": {"a": 1}}, "fields"),
    "ct-fields-list": ("customToken", {**CT, "fields": ["a"]}, "fields"),
    # customToken: body shape
    "ct-body-number": ("customToken", {**CT, "body": 5}, "body"),
    "ct-form-body-nested": (
        "customToken", {**CT, "bodyFormat": "form", "body": {"a": {"b": "c"}}}, "body"
    ),
    "ct-form-body-list-value": (
        "customToken", {**CT, "bodyFormat": "form", "body": {"a": ["b"]}}, "body"
    ),
    "ct-body-format-xml": ("customToken", {**CT, "bodyFormat": "xml"}, "bodyFormat"),
    # customToken: where the token and its lifetime are read
    "ct-token-path-empty-segment": ("customToken", {**CT, "tokenPath": "data..token"}, "tokenPath"),
    "ct-token-path-wildcard": ("customToken", {**CT, "tokenPath": "items.*.token"}, "tokenPath"),
    "ct-token-path-bad-escape": ("customToken", {**CT, "tokenPath": "a\\q"}, "tokenPath"),
    "ct-token-path-number": ("customToken", {**CT, "tokenPath": 3}, "tokenPath"),
    "ct-header-location-without-name": (
        "customToken", {**CT, "tokenLocation": "header"}, "tokenHeader"
    ),
    "ct-token-location-cookie": ("customToken", {**CT, "tokenLocation": "cookie"}, "tokenLocation"),
    "ct-ttl-path-missing": ("customToken", {**CT, "ttlFrom": "path"}, "ttlPath"),
    "ct-ttl-path-bad": ("customToken", {**CT, "ttlFrom": "path", "ttlPath": "."}, "ttlPath"),
    "ct-ttl-from-unknown": ("customToken", {**CT, "ttlFrom": "header"}, "ttlFrom"),
    "ct-ttl-zero": ("customToken", {**CT, "ttlSeconds": 0}, "ttlSeconds"),
    "ct-ttl-too-long": ("customToken", {**CT, "ttlSeconds": 86401}, "ttlSeconds"),
    "ct-ttl-string": ("customToken", {**CT, "ttlSeconds": "60"}, "ttlSeconds"),
    # customToken: injection
    "ct-query-without-name": ("customToken", {**CT, "injectIn": "query"}, "queryParam"),
    "ct-inject-in-body": ("customToken", {**CT, "injectIn": "body"}, "injectIn"),
    "ct-method-put": ("customToken", {**CT, "method": "PUT"}, "method"),
    "ct-token-url-file": ("customToken", {**CT, "tokenUrl": "file:///etc/passwd"}, "tokenUrl"),
}  # fmt: skip


@pytest.mark.parametrize(("auth", "secret", "field"), INVALID.values(), ids=INVALID.keys())
def test_bad_input_is_refused_naming_the_field(api, creds, auth, secret, field):
    answer = api.post(creds, json=body(auth, secret))
    assert_invalid(answer, f"credentialSecret.{field}")
    assert api.get(creds + "?includeTemporary=true").json()["credentials"] == []


def test_refusals_never_echo_secret_values(api, creds):
    secret = {**CC, "clientSecret": SECRET, "extraParams": {"client_secret": SECRET}}
    answer = api.post(creds, json=body("oauth2", secret))
    assert answer.status_code == 400 and SECRET not in answer.text
    secret = {**CT, "fields": {"pw": SECRET}, "headers": {"X-K": "{{fields.other}}" + SECRET}}
    answer = api.post(creds, json=body("customToken", secret))
    assert answer.status_code == 400 and SECRET not in answer.text
