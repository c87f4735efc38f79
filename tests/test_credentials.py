"""Credentials through the Core API: CRUD, auth types, validation, immutables, tenancy, roles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support import (
    DROP,
    REGION,
    add_member,
    assert_error,
    assert_has,
    assert_invalid,
    assert_owned_record,
    body_with,
    create,
    credential_body,
    new_client,
    new_proxy,
)

OTHER_REGION = "eu-west-1"
PREFIXES = pytest.mark.parametrize("prefix", ["/api", ""], ids=["api-prefix", "bare"])
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"
JWKS_URL = "https://issuer.example/.well-known/jwks.json"
TOKEN_URL = "https://auth.example/oauth/token"
HMAC_SECRET = "s" * 32


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def creds(client_id) -> str:
    return f"/api/clients/{client_id}/credentials"


@pytest.fixture
def credential(api, creds) -> dict:
    return create(api, creds, credential_body(), "credentials")


def ids(listing) -> list[str]:
    return [c["credentialId"] for c in listing.json()["credentials"]]


# CRUD


@PREFIXES
def test_create_get_list_update_delete(api, owner, client_id, prefix):
    url = f"{prefix}/clients/{client_id}/credentials"
    sent = credential_body(
        credentialName="Mobile app key",
        credentialActive=False,
        credentialDefaultRuleEffect="deny",
        credentialExpiresAt="2030-01-02T03:04:05Z",
    )
    response = api.post(url, json=sent)
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"credentials", "message"}
    assert response.json()["message"] == "Success"
    [cred] = response.json()["credentials"]
    assert_has(
        cred,
        {
            "credentialName": "Mobile app key",
            "credentialType": "proxy",
            "credentialAuthType": "apiKey",
            "credentialRegion": REGION,
            "credentialActive": False,
            "credentialDefaultRuleEffect": "deny",
            "credentialTemporary": False,
            "credentialSettings": {"in": "header", "name": "Authorization"},
        },
    )
    assert when(cred["credentialExpiresAt"]) == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert "credentialSecret" not in cred
    assert_owned_record(cred, "credential", "cred_", client_id, owner)

    one = f"{url}/{cred['credentialId']}"
    assert api.get(one).json() == {"credentials": [cred], "message": "Success"}
    assert api.get(url).json() == {"credentials": [cred], "message": "Success"}

    changes = {
        "credentialName": "Renamed key",
        "credentialActive": True,
        "credentialExpiresAt": "2031-06-01T12:00:00+02:00",
        "credentialDefaultRuleEffect": "allow",
    }
    response = api.put(one, json=changes)
    assert response.status_code == 200, response.text
    [updated] = response.json()["credentials"]
    assert_has(
        updated,
        {"credentialName": "Renamed key", "credentialActive": True},
    )
    assert updated["credentialDefaultRuleEffect"] == "allow"
    assert when(updated["credentialExpiresAt"]) == datetime(2031, 6, 1, 10, 0, tzinfo=UTC)
    assert updated["credentialSettings"] == cred["credentialSettings"]
    assert updated["credentialCreatedAt"] == cred["credentialCreatedAt"]
    assert updated["credentialUpdatedAt"] >= cred["credentialUpdatedAt"]
    assert api.get(one).json()["credentials"] == [updated]

    response = api.put(one, json={"credentialExpiresAt": None})
    assert response.status_code == 200, response.text
    assert response.json()["credentials"][0]["credentialExpiresAt"] is None

    response = api.delete(one)
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Credential deleted successfully"}
    assert_error(api.get(one), 404, "NOT_FOUND")
    assert_error(api.delete(one), 404, "NOT_FOUND")
    assert api.get(url).json()["credentials"] == []


def test_defaults(credential):
    assert_has(
        credential,
        {
            "credentialActive": True,
            "credentialDefaultRuleEffect": "allow",
            "credentialExpiresAt": None,
            "credentialTemporary": False,
        },
    )


@pytest.mark.parametrize("value", ["true", "false", "TRUE", "1", "0", None])
def test_list_include_temporary(api, creds, credential, value):
    params = {} if value is None else {"includeTemporary": value}
    response = api.get(creds, params=params)
    assert response.status_code == 200, response.text
    assert response.json() == {"credentials": [credential], "message": "Success"}


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_list_include_temporary_bad_value(api, creds, value):
    assert_invalid(api.get(creds, params={"includeTemporary": value}), "includeTemporary")


def test_list_keeps_creation_order(api, creds):
    made = [
        create(api, creds, credential_body(credentialName=f"key {n}"), "credentials")
        for n in range(3)
    ]
    assert ids(api.get(creds)) == [c["credentialId"] for c in made]


def test_a_fetched_credential_can_be_put_back(api, creds, credential):
    one = f"{creds}/{credential['credentialId']}"
    response = api.put(one, json=credential)
    assert response.status_code == 200, response.text
    [again] = response.json()["credentials"]
    assert {k: v for k, v in again.items() if k != "credentialUpdatedAt"} == {
        k: v for k, v in credential.items() if k != "credentialUpdatedAt"
    }


def test_unknown_credential_is_not_found(api, creds):
    for call in (api.get, api.put, api.delete):
        kwargs = {"json": {"credentialName": "x"}} if call == api.put else {}
        assert_error(call(f"{creds}/cred_0000000000000000", **kwargs), 404, "NOT_FOUND")


# Every auth type

VALID = {
    "proxy-apiKey-header": (
        "proxy",
        "apiKey",
        {"value": "k-123", "header": "X-Api-Key"},
        {"in": "header", "name": "X-Api-Key"},
    ),
    "proxy-apiKey-default": (
        "proxy",
        "apiKey",
        {"value": "k-123"},
        {"in": "header", "name": "Authorization"},
    ),
    "target-apiKey-query": (
        "target",
        "apiKey",
        {"value": "k-123", "query": "api_key"},
        {"in": "query", "name": "api_key"},
    ),
    "proxy-bearer": (
        "proxy",
        "bearer",
        {"token": "t-123"},
        {"header": "Authorization", "prefix": "Bearer"},
    ),
    "target-bearer-prefix": (
        "target",
        "bearer",
        {"token": "t-123", "prefix": "Token", "header": "X-Auth"},
        {"header": "X-Auth", "prefix": "Token"},
    ),
    "proxy-basicAuth": ("proxy", "basicAuth", {"username": "svc", "password": "pw"}, {}),
    "target-basicAuth-empty-password": (
        "target",
        "basicAuth",
        {"username": "svc", "password": ""},
        {},
    ),
    "proxy-jwt": ("proxy", "jwt", {"token": JWT}, {"header": "Authorization", "prefix": "Bearer"}),
    "target-jwt": (
        "target",
        "jwt",
        {"token": JWT, "prefix": "JWT"},
        {"header": "Authorization", "prefix": "JWT"},
    ),
    "proxy-jwtVerify-jwks": (
        "proxy",
        "jwtVerify",
        {
            "jwksUrl": JWKS_URL,
            "issuer": "https://issuer.example/",
            "audience": ["orders-api"],
            "algorithms": ["RS256", "ES256"],
            "leewaySeconds": 30,
        },
        {
            "jwksUrl": JWKS_URL,
            "issuer": "https://issuer.example/",
            "audience": ["orders-api"],
            "algorithms": ["RS256", "ES256"],
            "leewaySeconds": 30,
        },
    ),
    "proxy-jwtVerify-jwks-defaults": (
        "proxy",
        "jwtVerify",
        {"jwksUrl": "http://127.0.0.1:8080/jwks"},
        {
            "jwksUrl": "http://127.0.0.1:8080/jwks",
            "issuer": None,
            "audience": None,
            "algorithms": ["RS256"],
            "leewaySeconds": 0,
        },
    ),
    "proxy-jwtVerify-hmac": (
        "proxy",
        "jwtVerify",
        {"secret": HMAC_SECRET, "audience": "orders-api", "algorithms": ["HS512"]},
        {
            "jwksUrl": None,
            "issuer": None,
            "audience": "orders-api",
            "algorithms": ["HS512"],
            "leewaySeconds": 0,
        },
    ),
    "target-oauth2-client-credentials": (
        "target",
        "oauth2",
        {"tokenUrl": TOKEN_URL, "clientId": "app-1", "clientSecret": "cs", "scope": "read"},
        {
            "grantType": "client_credentials",
            "tokenUrl": TOKEN_URL,
            "authorizeUrl": None,
            "clientId": "app-1",
            "clientAuthMethod": "client_secret_basic",
            "usePkce": False,
            "scope": "read",
            "audience": None,
            "extraParams": {},
            "header": "Authorization",
            "prefix": "Bearer",
        },
    ),
    "target-oauth2-refresh-token": (
        "target",
        "oauth2",
        {
            "grantType": "refresh_token",
            "tokenUrl": TOKEN_URL,
            "clientId": "app-1",
            "refreshToken": "rt",
            "audience": "https://api.example",
        },
        {
            "grantType": "refresh_token",
            "tokenUrl": TOKEN_URL,
            "authorizeUrl": None,
            "clientId": "app-1",
            "clientAuthMethod": "none",
            "usePkce": False,
            "scope": None,
            "audience": "https://api.example",
            "extraParams": {},
            "header": "Authorization",
            "prefix": "Bearer",
        },
    ),
    "target-customToken": (
        "target",
        "customToken",
        {
            "tokenUrl": TOKEN_URL,
            "headers": {"X-Api-Key": "k"},
            "body": {"user": "u", "password": "p"},
            "tokenPath": "data.token",
            "ttlSeconds": 600,
            "header": "X-Token",
            "prefix": "",
        },
        {
            "tokenUrl": TOKEN_URL,
            "method": "POST",
            "bodyFormat": "json",
            "tokenLocation": "body",
            "tokenPath": "data.token",
            "ttlFrom": "fixed",
            "ttlSeconds": 600,
            "injectIn": "header",
            "header": "X-Token",
            "prefix": "",
            "tokenHeader": None,
            "ttlPath": None,
            "queryParam": None,
            "fieldNames": [],
        },
    ),
    "target-customToken-defaults": (
        "target",
        "customToken",
        {"tokenUrl": TOKEN_URL, "method": "GET", "body": "grant_type=password"},
        {
            "tokenUrl": TOKEN_URL,
            "method": "GET",
            "bodyFormat": "form",
            "tokenLocation": "body",
            "tokenPath": "access_token",
            "ttlFrom": "fixed",
            "ttlSeconds": 3600,
            "injectIn": "header",
            "header": "Authorization",
            "prefix": "Bearer",
            "tokenHeader": None,
            "ttlPath": None,
            "queryParam": None,
            "fieldNames": [],
        },
    ),
    "target-custom": (
        "target",
        "custom",
        {"headers": {"X-Tenant": "acme", "X-Sig": "s"}, "queryParams": {"apikey": "q"}},
        {"headerNames": ["X-Sig", "X-Tenant"], "queryParamNames": ["apikey"]},
    ),
    "target-custom-query-only": (
        "target",
        "custom",
        {"queryParams": {"apikey": "q"}},
        {"headerNames": [], "queryParamNames": ["apikey"]},
    ),
    "target-none": ("target", "none", None, {}),
    "target-none-empty-secret": ("target", "none", {}, {}),
}


@pytest.mark.parametrize(("kind", "auth", "secret", "settings"), VALID.values(), ids=VALID.keys())
def test_every_auth_type_with_a_valid_secret(api, creds, kind, auth, secret, settings):
    body = credential_body(kind, "apiKey", credentialAuthType=auth, credentialSecret=secret)
    if secret is None:
        del body["credentialSecret"]
    cred = create(api, creds, body, "credentials")
    assert_has(
        cred,
        {"credentialType": kind, "credentialAuthType": auth, "credentialSettings": settings},
    )
    assert "credentialSecret" not in cred
    assert api.get(f"{creds}/{cred['credentialId']}").json()["credentials"] == [cred]


SEED_SHAPES = {
    # Seed 000: the proxy credential and the target credential of its walkthrough.
    "seed-key-header": (
        "proxy",
        "key",
        {"key": "X-API-Key", "value": "app-key", "addToHeader": True},
        "apiKey",
        {"in": "header", "name": "X-API-Key"},
    ),
    "seed-bearer": (
        "target",
        "bearer",
        {"token": "sk_test_123", "addToHeader": True},
        "bearer",
        {"header": "Authorization", "prefix": "Bearer"},
    ),
    "seed-key-query": (
        "target",
        "key",
        {"key": "api_key", "value": "app-key", "addToHeader": False},
        "apiKey",
        {"in": "query", "name": "api_key"},
    ),
    # Blog vocabulary: `key` with the key itself, `basic`.
    "blog-key": (
        "proxy",
        "key",
        {"key": "rr_live_abc123"},
        "apiKey",
        {"in": "header", "name": "Authorization"},
    ),
    "blog-basic": ("target", "basic", {"username": "u", "password": "p"}, "basicAuth", {}),
}


@pytest.mark.parametrize(
    ("kind", "auth", "secret", "canonical", "settings"),
    SEED_SHAPES.values(),
    ids=SEED_SHAPES.keys(),
)
def test_seed_shapes_and_aliases_are_stored_canonically(
    api, creds, kind, auth, secret, canonical, settings
):
    body = credential_body(kind, "apiKey", credentialAuthType=auth, credentialSecret=secret)
    cred = create(api, creds, body, "credentials")
    assert_has(cred, {"credentialAuthType": canonical, "credentialSettings": settings})
    one = f"{creds}/{cred['credentialId']}"
    assert api.get(one).json()["credentials"][0]["credentialAuthType"] == canonical
    assert api.get(creds).json()["credentials"][0]["credentialAuthType"] == canonical
    # The alias names the same auth type, so sending it back is no change.
    response = api.put(one, json={"credentialAuthType": auth, "credentialName": "same"})
    assert response.status_code == 200, response.text
    assert_has(response.json()["credentials"][0], {"credentialAuthType": canonical})


INVALID_SECRETS = {
    "apiKey-empty": ("proxy", "apiKey", {}, "credentialSecret.value"),
    "apiKey-empty-value": ("proxy", "apiKey", {"value": ""}, "credentialSecret.value"),
    "apiKey-number": ("proxy", "apiKey", {"value": 12345}, "credentialSecret.value"),
    "apiKey-crlf": ("target", "apiKey", {"value": "a\r\nX-Evil: 1"}, "credentialSecret.value"),
    "apiKey-nul": ("target", "apiKey", {"value": "a\x00b"}, "credentialSecret.value"),
    "apiKey-header-space": (
        "proxy",
        "apiKey",
        {"value": "v", "header": "X Api Key"},
        "credentialSecret.header",
    ),
    "apiKey-seed-key-space": (
        "proxy",
        "key",
        {"key": "X Api Key", "value": "v", "addToHeader": True},
        "credentialSecret.key",
    ),
    "apiKey-header-and-query": (
        "proxy",
        "apiKey",
        {"value": "v", "header": "X-K", "query": "k"},
        "credentialSecret.query",
    ),
    "apiKey-query-without-name": (
        "target",
        "apiKey",
        {"value": "v", "addToHeader": False},
        "credentialSecret.query",
    ),
    "apiKey-extra-field": (
        "proxy",
        "apiKey",
        {"value": "v", "color": "blue"},
        "credentialSecret.color",
    ),
    "bearer-missing-token": ("proxy", "bearer", {"prefix": "Bearer"}, "credentialSecret.token"),
    "bearer-lf": ("target", "bearer", {"token": "t\nX-Evil: 1"}, "credentialSecret.token"),
    "bearer-prefix-crlf": (
        "target",
        "bearer",
        {"token": "t", "prefix": "Bearer\r\n"},
        "credentialSecret.prefix",
    ),
    "bearer-header-space": (
        "target",
        "bearer",
        {"token": "t", "header": "My Header"},
        "credentialSecret.header",
    ),
    "bearer-not-in-header": (
        "target",
        "bearer",
        {"token": "t", "addToHeader": False},
        "credentialSecret.addToHeader",
    ),
    "bearer-extra-field": (
        "proxy",
        "bearer",
        {"token": "t", "value": "v"},
        "credentialSecret.value",
    ),
    "basicAuth-missing-username": (
        "proxy",
        "basicAuth",
        {"password": "p"},
        "credentialSecret.username",
    ),
    "basicAuth-missing-password": (
        "proxy",
        "basicAuth",
        {"username": "u"},
        "credentialSecret.password",
    ),
    "basicAuth-colon": (
        "target",
        "basicAuth",
        {"username": "a:b", "password": "p"},
        "credentialSecret.username",
    ),
    "basicAuth-password-crlf": (
        "target",
        "basicAuth",
        {"username": "u", "password": "p\r\n"},
        "credentialSecret.password",
    ),
    "jwt-not-a-jwt": ("proxy", "jwt", {"token": "not-a-jwt"}, "credentialSecret.token"),
    "jwt-two-segments": ("target", "jwt", {"token": "abc.def"}, "credentialSecret.token"),
    "jwtVerify-neither": ("proxy", "jwtVerify", {"issuer": "x"}, "credentialSecret.jwksUrl"),
    "jwtVerify-both": (
        "proxy",
        "jwtVerify",
        {"jwksUrl": JWKS_URL, "secret": HMAC_SECRET},
        "credentialSecret.jwksUrl",
    ),
    "jwtVerify-rs256-with-secret": (
        "proxy",
        "jwtVerify",
        {"secret": HMAC_SECRET, "algorithms": ["RS256"]},
        "credentialSecret.algorithms",
    ),
    "jwtVerify-hs256-with-jwks": (
        "proxy",
        "jwtVerify",
        {"jwksUrl": JWKS_URL, "algorithms": ["HS256"]},
        "credentialSecret.algorithms",
    ),
    "jwtVerify-unknown-algorithm": (
        "proxy",
        "jwtVerify",
        {"jwksUrl": JWKS_URL, "algorithms": ["none"]},
        "credentialSecret.algorithms",
    ),
    "jwtVerify-short-secret": (
        "proxy",
        "jwtVerify",
        {"secret": "s" * 31},
        "credentialSecret.secret",
    ),
    "jwtVerify-ftp-jwks": (
        "proxy",
        "jwtVerify",
        {"jwksUrl": "ftp://issuer.example/jwks.json"},
        "credentialSecret.jwksUrl",
    ),
    "jwtVerify-relative-jwks": (
        "proxy",
        "jwtVerify",
        {"jwksUrl": "/.well-known/jwks.json"},
        "credentialSecret.jwksUrl",
    ),
    "jwtVerify-leeway": (
        "proxy",
        "jwtVerify",
        {"jwksUrl": JWKS_URL, "leewaySeconds": 301},
        "credentialSecret.leewaySeconds",
    ),
    "jwtVerify-audience": (
        "proxy",
        "jwtVerify",
        {"jwksUrl": JWKS_URL, "audience": [1]},
        "credentialSecret.audience",
    ),
    "oauth2-missing-token-url": (
        "target",
        "oauth2",
        {"clientId": "c", "clientSecret": "s"},
        "credentialSecret.tokenUrl",
    ),
    "oauth2-bad-token-url": (
        "target",
        "oauth2",
        {"tokenUrl": "file:///etc/passwd", "clientId": "c", "clientSecret": "s"},
        "credentialSecret.tokenUrl",
    ),
    "oauth2-missing-client-id": (
        "target",
        "oauth2",
        {"tokenUrl": TOKEN_URL, "clientSecret": "s"},
        "credentialSecret.clientId",
    ),
    "oauth2-client-credentials-without-secret": (
        "target",
        "oauth2",
        {"tokenUrl": TOKEN_URL, "clientId": "c"},
        "credentialSecret.clientSecret",
    ),
    "oauth2-refresh-without-token": (
        "target",
        "oauth2",
        {"grantType": "refresh_token", "tokenUrl": TOKEN_URL, "clientId": "c"},
        "credentialSecret.refreshToken",
    ),
    "oauth2-unknown-grant": (
        "target",
        "oauth2",
        {"grantType": "password", "tokenUrl": TOKEN_URL, "clientId": "c", "clientSecret": "s"},
        "credentialSecret.grantType",
    ),
    "customToken-missing-url": (
        "target",
        "customToken",
        {"headers": {"X-K": "v"}},
        "credentialSecret.tokenUrl",
    ),
    "customToken-bad-method": (
        "target",
        "customToken",
        {"tokenUrl": TOKEN_URL, "method": "PUT"},
        "credentialSecret.method",
    ),
    "customToken-header-name-space": (
        "target",
        "customToken",
        {"tokenUrl": TOKEN_URL, "headers": {"X Key": "v"}},
        "credentialSecret.headers",
    ),
    "customToken-header-value-crlf": (
        "target",
        "customToken",
        {"tokenUrl": TOKEN_URL, "headers": {"X-Key": "v\r\nX-Evil: 1"}},
        "credentialSecret.headers",
    ),
    "customToken-body-list": (
        "target",
        "customToken",
        {"tokenUrl": TOKEN_URL, "body": ["a"]},
        "credentialSecret.body",
    ),
    "customToken-ttl": (
        "target",
        "customToken",
        {"tokenUrl": TOKEN_URL, "ttlSeconds": 0},
        "credentialSecret.ttlSeconds",
    ),
    "custom-empty": ("target", "custom", {}, "credentialSecret.headers"),
    "custom-header-name-space": (
        "target",
        "custom",
        {"headers": {"X Tenant": "acme"}},
        "credentialSecret.headers",
    ),
    "custom-header-value-lf": (
        "target",
        "custom",
        {"headers": {"X-Tenant": "acme\nX-Evil: 1"}},
        "credentialSecret.headers",
    ),
    "custom-header-value-number": (
        "target",
        "custom",
        {"headers": {"X-Tenant": 5}},
        "credentialSecret.headers",
    ),
    "custom-extra-field": (
        "target",
        "custom",
        {"headers": {"X-Tenant": "acme"}, "cookies": {"a": "b"}},
        "credentialSecret.cookies",
    ),
    "none-with-secret": ("target", "none", {"token": "t"}, "credentialSecret.token"),
    "secret-not-an-object": ("proxy", "apiKey", "k-123", "credentialSecret"),
    "secret-list": ("proxy", "apiKey", [{"value": "k"}], "credentialSecret"),
    "secret-null": ("proxy", "apiKey", None, "credentialSecret"),
}


@pytest.mark.parametrize(
    ("kind", "auth", "secret", "field"), INVALID_SECRETS.values(), ids=INVALID_SECRETS.keys()
)
def test_invalid_secret_is_refused_naming_the_field(api, creds, kind, auth, secret, field):
    body = credential_body(kind, "apiKey", credentialAuthType=auth, credentialSecret=secret)
    response = api.post(creds, json=body)
    assert_invalid(response, field)
    assert api.get(creds).json()["credentials"] == []


def test_missing_secret_is_refused(api, creds):
    body = credential_body()
    del body["credentialSecret"]
    assert_invalid(api.post(creds, json=body), "credentialSecret")


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"credentialName": DROP}, ["credentialName"]),
        ({"credentialType": DROP}, ["credentialType"]),
        ({"credentialAuthType": DROP}, ["credentialAuthType"]),
        ({"credentialRegion": DROP}, ["credentialRegion"]),
        (
            {"credentialName": DROP, "credentialType": DROP, "credentialRegion": DROP},
            ["credentialName", "credentialType", "credentialRegion"],
        ),
        ({"credentialType": "both"}, ["credentialType"]),
        ({"credentialType": "Proxy"}, ["credentialType"]),
        ({"credentialAuthType": "hmac"}, ["credentialAuthType"]),
        ({"credentialAuthType": "APIKEY"}, ["credentialAuthType"]),
        ({"credentialAuthType": None}, ["credentialAuthType"]),
        ({"credentialName": ""}, ["credentialName"]),
        ({"credentialName": "x" * 201}, ["credentialName"]),
        ({"credentialName": 5}, ["credentialName"]),
        ({"credentialRegion": "US East"}, ["credentialRegion"]),
        ({"credentialActive": "maybe"}, ["credentialActive"]),
        ({"credentialDefaultRuleEffect": "block"}, ["credentialDefaultRuleEffect"]),
        ({"credentialExpiresAt": "next tuesday"}, ["credentialExpiresAt"]),
        ({"credentialColor": "blue"}, ["credentialColor"]),
        (
            {"credentialType": 1, "credentialActive": "maybe"},
            ["credentialType", "credentialActive"],
        ),
    ],
)
def test_bad_credential_body_is_refused(api, creds, overrides, fields):
    assert_invalid(api.post(creds, json=body_with(credential_body(), overrides)), *fields)
    assert api.get(creds).json()["credentials"] == []


@pytest.mark.parametrize(
    ("kind", "auth", "secret"),
    [
        ("target", "jwtVerify", {"jwksUrl": JWKS_URL}),
        ("proxy", "oauth2", {"tokenUrl": TOKEN_URL, "clientId": "c", "clientSecret": "s"}),
        ("proxy", "customToken", {"tokenUrl": TOKEN_URL}),
        ("proxy", "custom", {"headers": {"X-Tenant": "acme"}}),
        ("proxy", "none", None),
    ],
)
def test_auth_type_restricted_by_credential_type(api, creds, kind, auth, secret):
    body = credential_body(kind, "apiKey", credentialAuthType=auth, credentialSecret=secret)
    if secret is None:
        del body["credentialSecret"]
    assert_invalid(api.post(creds, json=body), "credentialAuthType")
    assert api.get(creds).json()["credentials"] == []


@pytest.mark.parametrize(
    ("auth", "secret"),
    [
        ("custom", {"headers": {"Host": "evil.example"}}),
        ("custom", {"headers": {"Transfer-Encoding": "chunked"}}),
        ("apiKey", {"value": "v", "header": "Content-Length"}),
        ("bearer", {"token": "t", "header": "Connection"}),
    ],
)
def test_gateway_managed_header_names_are_refused(api, creds, auth, secret):
    body = credential_body("target", "apiKey", credentialAuthType=auth, credentialSecret=secret)
    assert_invalid(api.post(creds, json=body), "credentialSecret")


@pytest.mark.parametrize(
    ("auth", "secret"),
    [
        ("apiKey", {"value": "v", "query": "api_key", "addToHeader": True}),
        ("key", {"key": "X-API-Key", "value": "v", "header": "X-Other-Key"}),
        ("custom", {"headers": {"X-Tenant": "a", "x-tenant": "b"}}),
    ],
    ids=["addToHeader-with-query", "key-and-header", "custom-duplicate-header"],
)
def test_contradictory_secret_is_refused(api, creds, auth, secret):
    body = credential_body("target", "apiKey", credentialAuthType=auth, credentialSecret=secret)
    assert_invalid(api.post(creds, json=body), "credentialSecret")


@pytest.mark.parametrize("name", ["api\r\nkey", "api\x00key"], ids=["crlf", "nul"])
def test_query_parameter_name_with_control_characters_is_refused(api, creds, name):
    body = credential_body("target", "apiKey", credentialSecret={"value": "v", "query": name})
    assert_invalid(api.post(creds, json=body), "credentialSecret.query")


# Updates


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("credentialRegion", OTHER_REGION),
        ("credentialType", "target"),
        ("credentialAuthType", "bearer"),
        ("credentialAuthType", "basic"),
    ],
)
def test_immutable_fields_cannot_change(api, creds, credential, field, value):
    one = f"{creds}/{credential['credentialId']}"
    response = api.put(one, json={field: value, "credentialName": "Not applied"})
    assert_invalid(response, field)
    assert api.get(one).json()["credentials"] == [credential]


def test_immutable_fields_accept_the_same_value(api, creds, credential):
    one = f"{creds}/{credential['credentialId']}"
    same = {
        "credentialRegion": REGION,
        "credentialType": "proxy",
        "credentialAuthType": "apiKey",
        "credentialName": "Same shape",
    }
    response = api.put(one, json=same)
    assert response.status_code == 200, response.text
    assert_has(response.json()["credentials"][0], same)


@pytest.mark.parametrize("secret", [{"value": "new-key-0123456789"}, None, "new-key"])
def test_secret_cannot_be_changed_by_update(api, creds, credential, secret):
    one = f"{creds}/{credential['credentialId']}"
    response = api.put(one, json={"credentialSecret": secret, "credentialName": "Not applied"})
    assert_invalid(response, "credentialSecret")
    assert api.get(one).json()["credentials"] == [credential]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"credentialName": ""}, "credentialName"),
        ({"credentialName": None}, "credentialName"),
        ({"credentialActive": "maybe"}, "credentialActive"),
        ({"credentialDefaultRuleEffect": "block"}, "credentialDefaultRuleEffect"),
        ({"credentialExpiresAt": "soon"}, "credentialExpiresAt"),
        ({"credentialRegion": "EU"}, "credentialRegion"),
        ({"credentialAuthType": "hmac"}, "credentialAuthType"),
        ({"credentialColor": "blue"}, "credentialColor"),
    ],
)
def test_bad_update_is_refused(api, creds, credential, changes, field):
    one = f"{creds}/{credential['credentialId']}"
    assert_invalid(api.put(one, json=changes), field)
    assert api.get(one).json()["credentials"] == [credential]


@pytest.mark.parametrize("data", ["not json", "[]", '"text"', "", '{"credentialName": "x"'])
def test_body_must_be_a_json_object(api, creds, credential, data):
    headers = {"Content-Type": "application/json"}
    assert_error(api.post(creds, data=data, headers=headers), 400, "INVALID_JSON")
    one = f"{creds}/{credential['credentialId']}"
    assert_error(api.put(one, data=data, headers=headers), 400, "INVALID_JSON")
    assert api.get(creds).json()["credentials"] == [credential]


# Deletion, tenancy and roles


@pytest.mark.parametrize("reference", ["proxyProxyCredentialId", "proxyTargetCredentialId"])
def test_credential_used_by_a_proxy_cannot_be_deleted(api, client_id, creds, reference):
    proxy = new_proxy(api, client_id)
    used = f"{creds}/{proxy[reference]}"
    body = assert_error(api.delete(used), 409, "CONFLICT")
    assert body["error"]["details"]["proxies"] == [proxy["proxyId"]]
    assert proxy["proxyId"] in body["message"]
    assert api.get(used).status_code == 200

    response = api.delete(f"/api/clients/{client_id}/proxies/{proxy['proxyId']}")
    assert response.status_code == 200, response.text
    assert api.delete(used).json() == {"message": "Credential deleted successfully"}
    assert_error(api.get(used), 404, "NOT_FOUND")


def test_other_tenants_see_nothing(api, stranger, creds, credential):
    theirs = api.as_user(stranger)
    one = f"{creds}/{credential['credentialId']}"
    assert_error(theirs.get(creds), 404, "NOT_FOUND")
    assert_error(theirs.post(creds, json=credential_body()), 404, "NOT_FOUND")
    assert_error(theirs.get(one), 404, "NOT_FOUND")
    assert_error(theirs.put(one, json={"credentialName": "Mine now"}), 404, "NOT_FOUND")
    assert_error(theirs.delete(one), 404, "NOT_FOUND")
    assert_error(theirs.get(f"/clients/{credential['clientId']}/credentials"), 404, "NOT_FOUND")
    assert api.get(creds).json()["credentials"] == [credential]


def test_credential_of_another_client_is_not_found_through_mine(api, creds, credential):
    mine = f"/api/clients/{new_client(api, 'Other')}/credentials"
    other = f"{mine}/{credential['credentialId']}"
    assert_error(api.get(other), 404, "NOT_FOUND")
    assert_error(api.put(other, json={"credentialName": "Moved"}), 404, "NOT_FOUND")
    assert_error(api.delete(other), 404, "NOT_FOUND")
    assert api.get(mine).json()["credentials"] == []
    assert api.get(creds).json()["credentials"] == [credential]


def test_user_role_reads_but_cannot_write(api, make_user, client_id, creds, credential):
    reader = make_user()
    add_member(api, client_id, reader, "user")
    theirs = api.as_user(reader)
    one = f"{creds}/{credential['credentialId']}"
    assert theirs.get(creds).json()["credentials"] == [credential]
    assert theirs.get(one).json()["credentials"] == [credential]
    assert_error(theirs.post(creds, json=credential_body()), 403, "FORBIDDEN")
    assert_error(theirs.put(one, json={"credentialName": "Mine"}), 403, "FORBIDDEN")
    assert_error(theirs.delete(one), 403, "FORBIDDEN")
    assert api.get(creds).json()["credentials"] == [credential]


def test_admin_role_writes(api, make_user, client_id, creds, credential):
    admin = make_user()
    add_member(api, client_id, admin, "admin")
    theirs = api.as_user(admin)
    made = create(theirs, creds, credential_body(credentialName="By admin"), "credentials")
    assert made["userId"] == admin.id
    one = f"{creds}/{credential['credentialId']}"
    response = theirs.put(one, json={"credentialActive": False})
    assert response.status_code == 200, response.text
    assert theirs.delete(one).json() == {"message": "Credential deleted successfully"}
    assert ids(api.get(creds)) == [made["credentialId"]]


def test_no_token_is_unauthorized(api, creds, credential):
    anonymous = api.as_user(None)
    one = f"{creds}/{credential['credentialId']}"
    assert_error(anonymous.get(creds), 401, "UNAUTHORIZED")
    assert_error(anonymous.post(creds, json=credential_body()), 401, "UNAUTHORIZED")
    assert_error(anonymous.get(one), 401, "UNAUTHORIZED")
    assert_error(anonymous.put(one, json={"credentialName": "x"}), 401, "UNAUTHORIZED")
    assert_error(anonymous.delete(one), 401, "UNAUTHORIZED")
    assert api.get(creds).json()["credentials"] == [credential]
