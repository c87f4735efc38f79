"""Credential secrets never come back out: not in responses, errors, the store file or the log.

Every secret value carries a unique marker. After creating, reading, listing and updating
credentials of every auth type, and sending invalid payloads that carry markers, no marker
may appear anywhere a person could look; yet each secret must be stored, sealed, intact.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote
from uuid import uuid4

import pytest
import requests
from sqlalchemy import text

from models.crypto import KeyRing, SealedSecret
from models.egress import egress_aad
from models.store import make_engine
from tests import oauth_support
from tests.oauth_support import CUSTOM_PASSWORD, CUSTOM_USERNAME
from tests.pool_proxies import ProxyFarm
from tests.pool_support import PoolApi
from tests.proxy_support import Setup, start_proxy
from tests.support import (
    TEST_MASTER_KEYS,
    Api,
    credential_body,
    new_client,
    proxy_body,
    target_body,
)
from tests.token_support import (
    REDIRECT_URI,
    latest_token,
    oauth2_secret,
    refresh_token_for,
    serve,
    token_setup,
    wait_expired,
)
from tests.token_support import get as token_get
from tests.web_support import Browser as WebClient
from tests.web_support import SourceAddressAdapter

MARKERS: list[str] = []


def mark(tag: str, suffix: str = "") -> str:
    """A fresh secret value, remembered so it can be looked for everywhere."""
    value = f"SECRET-{tag}-{uuid4().hex}{suffix}"
    MARKERS.append(value)
    return value


def short_mark() -> str:
    """A marker shorter than the 32 characters a shared JWT secret needs."""
    value = f"SECRET-{uuid4().hex[:12]}"
    MARKERS.append(value)
    return value


TOKEN_URL = "https://auth.example/oauth/token"


@dataclass
class Case:
    kind: str
    auth: str
    secret: dict
    sealed: dict  # what the store must hold, sealed
    settings: dict  # what the API may show
    canonical: str = ""

    def __post_init__(self):
        self.canonical = self.canonical or self.auth


def _cases() -> dict[str, Case]:
    cases = {}

    v = mark("apikey")
    cases["proxy-apiKey"] = Case(
        "proxy",
        "apiKey",
        {"value": v, "header": "X-Api-Key"},
        {"value": v},
        {"in": "header", "name": "X-Api-Key"},
    )
    v = mark("seed-key")
    cases["seed-key"] = Case(
        "target",
        "key",
        {"key": "X-API-Key", "value": v, "addToHeader": True},
        {"value": v},
        {"in": "header", "name": "X-API-Key"},
        "apiKey",
    )
    v = "rr_live_" + mark("blog-key")
    cases["blog-key"] = Case(
        "proxy",
        "key",
        {"key": v},
        {"value": v},
        {"in": "header", "name": "Authorization"},
        "apiKey",
    )
    v = mark("query-key")
    cases["target-apiKey-query"] = Case(
        "target",
        "apiKey",
        {"value": v, "query": "api_key"},
        {"value": v},
        {"in": "query", "name": "api_key"},
    )
    v = mark("bearer")
    cases["target-bearer"] = Case(
        "target",
        "bearer",
        {"token": v, "addToHeader": True},
        {"token": v},
        {"header": "Authorization", "prefix": "Bearer"},
    )
    user, password = mark("basic-user"), mark("basic-pw", "-pässwörd-秘密")
    cases["proxy-basicAuth"] = Case(
        "proxy",
        "basicAuth",
        {"username": user, "password": password},
        {"username": user, "password": password},
        {},
    )
    user, password = mark("basic-alias-user"), mark("basic-alias-pw")
    cases["target-basic"] = Case(
        "target",
        "basic",
        {"username": user, "password": password},
        {"username": user, "password": password},
        {},
        "basicAuth",
    )
    v = f"eyJhbGciOiJIUzI1NiJ9.{mark('jwt')}.c2lnbmF0dXJl"
    cases["proxy-jwt"] = Case(
        "proxy",
        "jwt",
        {"token": v},
        {"token": v},
        {"header": "Authorization", "prefix": "Bearer"},
    )
    v = mark("jwt-verify")
    cases["proxy-jwtVerify"] = Case(
        "proxy",
        "jwtVerify",
        {"secret": v, "issuer": "https://issuer.example/", "algorithms": ["HS256"]},
        {"secret": v},
        {
            "jwksUrl": None,
            "issuer": "https://issuer.example/",
            "audience": None,
            "algorithms": ["HS256"],
            "leewaySeconds": 0,
        },
    )
    v = mark("oauth2-client-secret")
    cases["target-oauth2-client-credentials"] = Case(
        "target",
        "oauth2",
        {"tokenUrl": TOKEN_URL, "clientId": "portcullis-app", "clientSecret": v, "scope": "read"},
        {"clientSecret": v},
        {
            "grantType": "client_credentials",
            "tokenUrl": TOKEN_URL,
            "authorizeUrl": None,
            "clientId": "portcullis-app",
            "clientAuthMethod": "client_secret_basic",
            "usePkce": False,
            "scope": "read",
            "audience": None,
            "extraParams": {},
            "header": "Authorization",
            "prefix": "Bearer",
        },
    )
    client_secret, refresh = mark("oauth2-secret"), mark("oauth2-refresh")
    cases["target-oauth2-refresh-token"] = Case(
        "target",
        "oauth2",
        {
            "grantType": "refresh_token",
            "tokenUrl": TOKEN_URL,
            "clientId": "portcullis-app",
            "clientSecret": client_secret,
            "refreshToken": refresh,
        },
        {"clientSecret": client_secret, "refreshToken": refresh},
        {
            "grantType": "refresh_token",
            "tokenUrl": TOKEN_URL,
            "authorizeUrl": None,
            "clientId": "portcullis-app",
            "clientAuthMethod": "client_secret_basic",
            "usePkce": False,
            "scope": None,
            "audience": None,
            "extraParams": {},
            "header": "Authorization",
            "prefix": "Bearer",
        },
    )
    headers = {"X-Api-Key": mark("ct-header")}
    body = {"username": "svc", "password": mark("ct-body"), "nested": {"pin": mark("ct-pin")}}
    cases["target-customToken"] = Case(
        "target",
        "customToken",
        {"tokenUrl": TOKEN_URL, "headers": headers, "body": body},
        {"headers": headers, "body": body},
        {
            "tokenUrl": TOKEN_URL,
            "method": "POST",
            "bodyFormat": "json",
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
    )
    form = f"grant_type=password&password={mark('ct-form')}"
    cases["target-customToken-form"] = Case(
        "target",
        "customToken",
        {"tokenUrl": TOKEN_URL, "body": form, "tokenPath": "token"},
        {"body": form},
        {
            "tokenUrl": TOKEN_URL,
            "method": "POST",
            "bodyFormat": "form",
            "tokenLocation": "body",
            "tokenPath": "token",
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
    )
    headers = {"X-Custom-Secret": mark("custom-header"), "X-Other": mark("custom-other")}
    query = {"sig": mark("custom-query")}
    cases["target-custom"] = Case(
        "target",
        "custom",
        {"headers": headers, "queryParams": query},
        {"headers": headers, "queryParams": query},
        {"headerNames": ["X-Custom-Secret", "X-Other"], "queryParamNames": ["sig"]},
    )
    return cases


CASES = _cases()


@dataclass
class Bad:
    """An invalid request carrying a secret marker."""

    body: dict | str
    field: str | None  # the field the 400 must name; None for INVALID_JSON
    method: str = "POST"


def _secret(kind: str, auth: str, secret, **overrides) -> dict:
    return credential_body(
        kind, "apiKey", credentialAuthType=auth, credentialSecret=secret, **overrides
    )


BAD = {
    "apiKey-crlf": Bad(
        _secret("target", "apiKey", {"value": mark("bad-crlf") + "\r\nX-Evil: 1"}),
        "credentialSecret.value",
    ),
    "apiKey-nul": Bad(
        _secret("target", "apiKey", {"value": mark("bad-nul") + "\x00"}),
        "credentialSecret.value",
    ),
    "apiKey-unknown-field": Bad(
        _secret("proxy", "apiKey", {"value": mark("bad-v"), "extra": mark("bad-extra")}),
        "credentialSecret.extra",
    ),
    "apiKey-header-and-query": Bad(
        _secret("proxy", "apiKey", {"value": mark("bad-hq"), "header": "X-K", "query": "k"}),
        "credentialSecret.query",
    ),
    "bearer-not-in-header": Bad(
        _secret("target", "bearer", {"token": mark("bad-bearer"), "addToHeader": False}),
        "credentialSecret.addToHeader",
    ),
    "bearer-lf": Bad(
        _secret("proxy", "bearer", {"token": mark("bad-bearer-lf") + "\n"}),
        "credentialSecret.token",
    ),
    "jwt-not-a-jwt": Bad(
        _secret("proxy", "jwt", {"token": mark("bad-jwt") + " not a jwt"}),
        "credentialSecret.token",
    ),
    "basicAuth-colon": Bad(
        _secret(
            "target",
            "basicAuth",
            {"username": mark("bad-user") + ":x", "password": mark("bad-pw")},
        ),
        "credentialSecret.username",
    ),
    "basicAuth-missing-password": Bad(
        _secret("proxy", "basicAuth", {"username": mark("bad-user-only")}),
        "credentialSecret.password",
    ),
    "jwtVerify-both-sources": Bad(
        _secret(
            "proxy",
            "jwtVerify",
            {"jwksUrl": "https://issuer.example/jwks", "secret": mark("bad-both")},
        ),
        "credentialSecret.jwksUrl",
    ),
    "jwtVerify-short-secret": Bad(
        _secret("proxy", "jwtVerify", {"secret": short_mark()}),
        "credentialSecret.secret",
    ),
    "jwtVerify-rs256-with-secret": Bad(
        _secret("proxy", "jwtVerify", {"secret": mark("bad-rs256"), "algorithms": ["RS256"]}),
        "credentialSecret.algorithms",
    ),
    "oauth2-missing-token-url": Bad(
        _secret("target", "oauth2", {"clientId": "app", "clientSecret": mark("bad-oauth")}),
        "credentialSecret.tokenUrl",
    ),
    "oauth2-unknown-grant": Bad(
        _secret(
            "target",
            "oauth2",
            {
                "grantType": "password",
                "tokenUrl": TOKEN_URL,
                "clientId": "app",
                "clientSecret": mark("bad-grant"),
            },
        ),
        "credentialSecret.grantType",
    ),
    "oauth2-refresh-without-token": Bad(
        _secret(
            "target",
            "oauth2",
            {
                "grantType": "refresh_token",
                "tokenUrl": TOKEN_URL,
                "clientId": "app",
                "clientSecret": mark("bad-refresh"),
            },
        ),
        "credentialSecret.refreshToken",
    ),
    "customToken-header-crlf": Bad(
        _secret(
            "target",
            "customToken",
            {"tokenUrl": TOKEN_URL, "headers": {"X-Key": mark("bad-ct-h") + "\r\n"}},
        ),
        "credentialSecret.headers",
    ),
    "customToken-bad-method": Bad(
        _secret(
            "target",
            "customToken",
            {"tokenUrl": TOKEN_URL, "method": "PUT", "body": {"password": mark("bad-ct-b")}},
        ),
        "credentialSecret.method",
    ),
    "customToken-body-list": Bad(
        _secret("target", "customToken", {"tokenUrl": TOKEN_URL, "body": [mark("bad-ct-l")]}),
        "credentialSecret.body",
    ),
    "custom-bad-header-name": Bad(
        _secret("target", "custom", {"headers": {"Bad Name": mark("bad-custom-name")}}),
        "credentialSecret.headers",
    ),
    "custom-bad-query-value": Bad(
        _secret(
            "target",
            "custom",
            {"headers": {"X-A": mark("bad-custom-h")}, "queryParams": {"q": 5}},
        ),
        "credentialSecret.queryParams",
    ),
    "none-with-secret": Bad(
        _secret("target", "none", {"token": mark("bad-none")}),
        "credentialSecret.token",
    ),
    "secret-not-an-object": Bad(_secret("proxy", "apiKey", mark("bad-string")), "credentialSecret"),
    "auth-type-not-for-proxy": Bad(
        _secret("proxy", "custom", {"headers": {"X-A": mark("bad-restricted")}}),
        "credentialAuthType",
    ),
    "unknown-auth-type": Bad(
        _secret("proxy", "hmac", {"value": mark("bad-auth-type")}), "credentialAuthType"
    ),
    "bad-name-valid-secret": Bad(
        _secret("proxy", "apiKey", {"value": mark("bad-name")}, credentialName=""),
        "credentialName",
    ),
    "update-with-secret": Bad(
        {"credentialSecret": {"value": mark("bad-update")}}, "credentialSecret", "PUT"
    ),
    "update-with-secret-and-bad-field": Bad(
        {"credentialSecret": {"value": mark("bad-update-2")}, "credentialActive": "maybe"},
        "credentialActive",
        "PUT",
    ),
    "truncated-json": Bad(
        '{"credentialName": "x", "credentialSecret": {"value": "' + mark("bad-json") + '"}',
        None,
    ),
}


@dataclass
class Run:
    client_id: str
    credential_ids: dict[str, str] = field(default_factory=dict)
    responses: list[tuple[str, requests.Response]] = field(default_factory=list)
    errors: dict[str, requests.Response] = field(default_factory=dict)


@pytest.fixture(scope="module")
def run(admin_server, owner) -> Run:
    """Create, read, list and update every case, then send every bad request."""
    api = Api(admin_server.base_url, owner.token)
    run = Run(new_client(api, "Leak check"))
    url = f"/api/clients/{run.client_id}/credentials"
    bare = f"/clients/{run.client_id}/credentials"

    for name, case in CASES.items():
        body = _secret(case.kind, case.auth, case.secret, credentialName=name)
        response = api.post(url, json=body)
        run.responses.append((f"create {name}", response))
        assert response.status_code == 201, response.text
        cred_id = response.json()["credentials"][0]["credentialId"]
        run.credential_ids[name] = cred_id

        fetched = api.get(f"{url}/{cred_id}")
        run.responses.append((f"get {name}", fetched))
        run.responses.append((f"get bare {name}", api.get(f"{bare}/{cred_id}")))
        changes = {
            "credentialName": f"{name} renamed",
            "credentialActive": False,
            "credentialExpiresAt": "2030-01-01T00:00:00Z",
            "credentialDefaultRuleEffect": "deny",
        }
        run.responses.append((f"update {name}", api.put(f"{url}/{cred_id}", json=changes)))
        put_back = fetched.json()["credentials"][0]
        run.responses.append((f"put back {name}", api.put(f"{url}/{cred_id}", json=put_back)))

    for params in ({}, {"includeTemporary": "true"}, {"includeTemporary": "false"}):
        run.responses.append((f"list {params}", api.get(url, params=params)))
    run.responses.append(("list bare", api.get(bare)))

    # The credentials work where credentials are used: a proxy can be built from them.
    target = api.post(f"/api/clients/{run.client_id}/targets", json=target_body())
    parts = {
        "proxyProxyCredentialId": run.credential_ids["proxy-basicAuth"],
        "proxyTargetId": target.json()["targets"][0]["targetId"],
        "proxyTargetCredentialId": run.credential_ids["target-custom"],
    }
    proxy = api.post(f"/api/clients/{run.client_id}/proxies", json=proxy_body(parts))
    run.responses.append(("create proxy", proxy))
    proxy_id = proxy.json()["proxies"][0]["proxyId"]
    run.responses.append(("get proxy", api.get(f"/api/clients/{run.client_id}/proxies/{proxy_id}")))

    one = f"{url}/{run.credential_ids['proxy-apiKey']}"
    headers = {"Content-Type": "application/json"}
    for name, bad in BAD.items():
        path = one if bad.method == "PUT" else url
        kwargs = {"data": bad.body, "headers": headers} if isinstance(bad.body, str) else {}
        kwargs = kwargs or {"json": bad.body}
        run.errors[name] = api.request(bad.method, path, **kwargs)
    return run


def leaked(text: str) -> list[str]:
    return [m for m in MARKERS if m in text or json.dumps(m)[1:-1] in text]


def test_markers_are_unique_and_plentiful():
    assert len(set(MARKERS)) == len(MARKERS) > 40


def test_no_response_holds_a_secret(run):
    assert len(run.responses) > 5 * len(CASES)
    for label, response in run.responses:
        assert response.status_code in (200, 201), (label, response.text)
        assert not leaked(response.text), label


@pytest.mark.parametrize("name", BAD.keys())
def test_error_for_a_bad_secret_payload_does_not_echo_it(run, name):
    response, bad = run.errors[name], BAD[name]
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if bad.field is None:
        assert error["code"] == "INVALID_JSON", error
    else:
        assert error["code"] == "INVALID_INPUT", error
        named = error["details"]["fields"]
        assert any(n == bad.field or n.startswith(bad.field + ".") for n in named), named
    assert not leaked(response.text), response.text


def test_bad_payloads_created_nothing(run, admin_server, owner):
    api = Api(admin_server.base_url, owner.token)
    listing = api.get(f"/api/clients/{run.client_id}/credentials").json()["credentials"]
    assert sorted(c["credentialId"] for c in listing) == sorted(run.credential_ids.values())
    # The refused updates changed nothing: each record is as its last successful PUT left it.
    last_put = {
        r.json()["credentials"][0]["credentialId"]: r.json()["credentials"][0]
        for label, r in run.responses
        if label.startswith("put back ")
    }
    assert {c["credentialId"]: c for c in listing} == last_put


@pytest.mark.parametrize("name", CASES.keys())
def test_settings_show_only_the_non_secret_parts(run, admin_server, owner, name):
    api = Api(admin_server.base_url, owner.token)
    cred_id, case = run.credential_ids[name], CASES[name]
    [cred] = api.get(f"/api/clients/{run.client_id}/credentials/{cred_id}").json()["credentials"]
    assert cred["credentialAuthType"] == case.canonical
    assert cred["credentialSettings"] == case.settings
    assert "credentialSecret" not in cred


def _store_forms(marker: str) -> list[bytes]:
    utf8 = marker.encode("utf-8")
    return [
        utf8,
        json.dumps(marker).encode("ascii")[1:-1],  # as a JSON column would escape it
        marker.encode("utf-16-le"),
        base64.b64encode(utf8),
    ]


def test_store_file_holds_no_plaintext_secret(run, admin_server):
    store = admin_server.store_bytes()
    assert run.client_id.encode() in store  # the store being read is the one written
    text = store.decode("utf-8", errors="replace")
    for marker in MARKERS:
        assert marker not in text, marker
        for form in _store_forms(marker):
            assert form not in store, (marker, form)
    for name in ("proxy-basicAuth", "target-basic"):
        sealed = CASES[name].sealed
        pair = f"{sealed['username']}:{sealed['password']}".encode()
        assert base64.b64encode(pair) not in store, name


def test_log_holds_no_secret(run, admin_server):
    log = admin_server.log_text()
    # The log did record this run's requests, including the refused ones.
    assert f"POST /api/clients/{run.client_id}/credentials 201" in log
    assert f"POST /api/clients/{run.client_id}/credentials 400" in log
    assert not leaked(log)


@pytest.mark.parametrize("name", CASES.keys())
def test_secret_is_stored_sealed_and_intact(run, admin_server, name):
    cred_id = run.credential_ids[name]
    engine = make_engine(admin_server.database_url)
    with engine.connect() as db:
        key_id, ciphertext, settings = db.execute(
            text(
                "SELECT secret_key_id, secret_ciphertext, settings FROM credentials WHERE id = :id"
            ),
            {"id": cred_id},
        ).one()
    engine.dispose()
    if isinstance(settings, str):  # SQLite's JSON is text; PostgreSQL's driver decodes it
        settings = json.loads(settings)
    assert not leaked(bytes(ciphertext).decode("latin-1"))
    assert settings == CASES[name].settings
    ring = KeyRing.parse(TEST_MASTER_KEYS)
    assert ring.open(SealedSecret(key_id, bytes(ciphertext)), cred_id) == CASES[name].sealed


# ---- the data plane: tokens minted for oauth2 and customToken target credentials ----

oauth_server_process, oauth_server = oauth_support.oauth_server_process, oauth_support.oauth_server


def _spellings(secret: str) -> list[bytes]:
    utf8 = secret.encode()
    return [utf8, quote(secret, safe="").encode(), base64.b64encode(utf8)]


def _egress_setups(api: Api, upstream, farm: ProxyFarm) -> dict[str, Setup]:
    """Proxies whose target egresses through a real http / socks5 proxy on 127.0.0.1 that
    asks for a username and password (right ones, and a wrong password: a 502)."""
    http_proxy = farm.http("leak-http", "elite", EGRESS_HOST, credentials=GATEWAY_HTTP)
    socks_proxy = farm.socks("leak-socks", EGRESS_HOST, credentials=GATEWAY_SOCKS)
    made = {}
    for name, proxy, (user, password) in (
        ("http", http_proxy, GATEWAY_HTTP),
        ("socks5", socks_proxy, GATEWAY_SOCKS),
        ("wrong", http_proxy, (GATEWAY_HTTP[0], GATEWAY_WRONG)),
    ):
        made[name] = Setup(api, upstream)
        egress = {"mode": "proxy", "url": f"{proxy.protocol}://{user}:{password}@"
                  f"{proxy.host}:{proxy.port}"}  # fmt: skip
        target = f"{made[name].base}/targets/{made[name].target['sKey']}"
        changed = api.put(target, json={"targetEgress": egress})
        assert changed.status_code == 200, changed.text
    return made


@pytest.fixture(scope="module")
def farm():
    with ProxyFarm() as running:
        yield running


def test_minted_tokens_and_the_secrets_minting_them_never_leak(
    admin_server, api, oauth_server, upstream, farm, tmp_path
):
    """Client secret, refresh tokens, customToken fields and every minted access token, and
    the username and password of the target's egress proxy: never in mitmweb's flows, the
    data plane's output (flow_detail 4), the request log, API answers, the admin's log or
    the store (unsealed)."""
    service = oauth_server.register_client("leak-svc", grant_types=["client_credentials"])
    person = oauth_server.register_client(
        "leak-app",
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=[REDIRECT_URI],
    )
    custom = {
        "tokenUrl": oauth_server.url("/custom/token"),
        "fields": {"user": CUSTOM_USERNAME, "pass": CUSTOM_PASSWORD},
        "body": {"username": "{{fields.user}}", "password": "{{fields.pass}}"},
        "tokenPath": "data.token",
        "ttlFrom": "path",
        "ttlPath": "data.ttl",
    }
    made = [
        token_setup(api, oauth_server, "oauth2", oauth2_secret(oauth_server, service)),
        token_setup(
            api,
            oauth_server,
            "oauth2",
            oauth2_secret(
                oauth_server,
                person,
                grantType="refresh_token",
                refreshToken=refresh_token_for(oauth_server, person),
            ),
        ),
        token_setup(api, oauth_server, "customToken", custom),
        token_setup(
            api,
            oauth_server,
            "customToken",
            {**custom, "injectIn": "query", "queryParam": "access_token"},
        ),
    ]
    egress = _egress_setups(api, upstream, farm)
    flow_file = tmp_path / "flows.mitm"
    gateway = start_proxy(admin_server, tmp_path, "-w", str(flow_file), "--set", "flow_detail=4")
    answers = []
    try:
        for name in ("http", "socks5", "wrong"):
            serve(gateway, egress[name])
            answers.append(token_get(gateway, egress[name], f"/egress-{name}"))
        for each in made:
            serve(gateway, each)
            answers.append(token_get(gateway, each, "/first?page=1"))
        oauth_server.revoke_access_tokens("leak-svc")  # a refused token, then a new one
        answers.append(token_get(gateway, made[0], "/after-revoke"))
        wait_expired(oauth_server, latest_token(oauth_server))  # refreshes and rotations
        answers += [token_get(gateway, each, "/second") for each in made]
        oauth_server.revoke_client_secret("leak-svc")
        wait_expired(oauth_server, latest_token(oauth_server, "oauth"))
        answers.append(token_get(gateway, made[0], "/refused"))  # 502: the secret is refused
    finally:
        gateway.stop()
    assert [a.status_code for a in answers[:2]] == [200, 200], answers[0].text
    assert answers[2].status_code == 502 and answers[2].json()["error"]["code"] == (
        "EGRESS_PROXY_FAILED"
    )
    egress_answers, answers = answers[:3], answers[3:]
    assert [a.status_code for a in answers][:-1] == [200] * (len(answers) - 1)
    assert answers[-1].status_code == 502

    issued = oauth_server.issued_secrets()
    secrets = [
        *GATEWAY_HTTP,
        *GATEWAY_SOCKS,
        GATEWAY_WRONG,
        *issued["client_secrets"],
        service.client_secret,  # revoked since, still a secret
        *issued["access_tokens"],
        *issued["refresh_tokens"],
        *issued["custom_tokens"],
        issued["custom_password"],
    ]
    assert len(issued["access_tokens"]) >= 4 and len(issued["refresh_tokens"]) >= 2
    logs = [
        api.get(f"{each.base}/proxies/{each.id}/requests").text
        for each in [*made, *egress.values()]
    ]  # the request log as the API shows it
    for carried in logs[len(made) : len(made) + 2]:  # which proxy carried it, no secrets
        assert re.search(r'"address":\s*"127\.0\.0\.1:\d+"', carried), carried[:2000]
    credentials = [api.get(f"{each.base}/credentials?includeTemporary=true").text for each in made]
    targets = [api.get(f"{each.base}/targets").text for each in egress.values()]
    places = {
        "flows": flow_file.read_bytes(),
        "data plane output": gateway.log_path.read_bytes(),
        "request logs": "".join(logs).encode(),
        "credential answers": "".join(credentials).encode(),
        "target answers": "".join(targets).encode(),
        "caller answers": b"".join(
            a.content + str(a.headers).encode() for a in [*egress_answers, *answers]
        ),
        "admin log": admin_server.log_text().encode(),
        "store": admin_server.store_bytes(),
    }
    assert all(len(logs_text) > 100 for logs_text in logs)  # the requests were logged
    assert b"access_token=%5BREDACTED%5D" in places["flows"]  # shown, blanked
    assert b"[REDACTED]" in places["flows"]
    for place, content in places.items():
        for secret in secrets:
            for spelling in _spellings(secret):
                assert spelling not in content, f"a secret in the {place}"
    pairs = (GATEWAY_HTTP, GATEWAY_SOCKS, (GATEWAY_HTTP[0], GATEWAY_WRONG))
    proxy_authorizations = [base64.b64encode(f"{u}:{p}".encode()) for u, p in pairs]
    for place, content in places.items():
        for value in proxy_authorizations:
            assert value not in content, f"a Proxy-Authorization in the {place}"


# ---- a target's fixed egress proxy: its username and password (targetEgress) ----

EGRESS_USER, EGRESS_PASSWORD = mark("egress-user"), mark("egress-pw")
SOCKS_USER, SOCKS_PASSWORD = mark("socks-user"), mark("socks-pw")
WEB_USER, WEB_PASSWORD = mark("web-egress-user"), mark("web-egress-pw")
WEB_URL_PASSWORD = mark("web-egress-url-pw")
# The data plane's egress proxies (real ones on 127.0.0.1 that check them).
GATEWAY_HTTP = (mark("gw-http-user"), mark("gw-http-pw"))
GATEWAY_SOCKS = (mark("gw-socks-user"), mark("gw-socks-pw"))
GATEWAY_WRONG = mark("gw-wrong-pw")
EGRESS_HOST = "127.0.0.1"


def _proxy_egress(scheme: str, user: str, password: str, port: int) -> dict:
    return {"mode": "proxy", "url": f"{scheme}://{user}:{password}@{EGRESS_HOST}:{port}"}


def _bad_egress() -> dict[str, object]:
    """`targetEgress` inputs refused with 400, each carrying a secret marker in its userinfo."""
    at = f"{EGRESS_HOST}:8080"
    return {
        "scheme": {"mode": "proxy", "url": f"ftp://u:{mark('eg-scheme')}@{at}"},
        "path": {"mode": "proxy", "url": f"http://u:{mark('eg-path')}@{at}/path"},
        "query": {"mode": "proxy", "url": f"http://u:{mark('eg-query')}@{at}?a=1"},
        "no-port": {"mode": "proxy", "url": f"http://u:{mark('eg-port')}@{EGRESS_HOST}"},
        "bad-port": {"mode": "proxy", "url": f"socks5://u:{mark('eg-bad-port')}@{at}0000"},
        "no-host": {"mode": "proxy", "url": f"http://u:{mark('eg-host')}@:8080"},
        "crlf": {"mode": "proxy", "url": f"http://u:{mark('eg-crlf')}%0d%0a@{at}"},
        "nul": {"mode": "proxy", "url": f"http://u:{mark('eg-nul')}%00@{at}"},
        "not-utf8": {"mode": "proxy", "url": f"http://u:{mark('eg-utf8')}%ff@{at}"},
        "space": {"mode": "proxy", "url": f"http://u:{mark('eg-space')} x@{at}"},
        "no-user": {"mode": "proxy", "url": f"http://:{mark('eg-no-user')}@{at}"},
        "long-password": {"mode": "proxy", "url": f"http://u:{mark('eg-long', 'x' * 300)}@{at}"},
        "unknown-mode": {"mode": "tunnel", "url": f"http://u:{mark('eg-mode')}@{at}"},
        "secret-field": {"mode": "proxy", "url": f"http://{at}", "password": mark("eg-field")},
        "pool-with-url": {"mode": "pool", "url": f"http://u:{mark('eg-pool')}@{at}"},
        "clear-not-bool": {
            "mode": "proxy",
            "url": f"http://u:{mark('eg-clear')}@{at}",
            "clearCredentials": "yes",
        },
        "a-string": f"http://u:{mark('eg-string')}@{at}",
    }


BAD_EGRESS = _bad_egress()


@dataclass
class EgressRun:
    client_id: str
    target_ids: dict[str, str] = field(default_factory=dict)
    responses: list[tuple[str, requests.Response]] = field(default_factory=list)
    errors: list[tuple[str, requests.Response]] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)
    refused_forms: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def egress_run(admin_server, owner) -> EgressRun:
    """Targets egressing through a fixed http and socks5 proxy with credentials: created,
    read, listed, updated (credentials kept, then replaced), and every bad input refused."""
    api = Api(admin_server.base_url, owner.token)
    run = EgressRun(new_client(api, "Egress leak check"))
    base = f"/api/clients/{run.client_id}/targets"
    made = {
        "http": _proxy_egress("http", EGRESS_USER, EGRESS_PASSWORD, 3128),
        "socks5": _proxy_egress("socks5", SOCKS_USER, SOCKS_PASSWORD, 1080),
    }
    for name, egress in made.items():
        body = target_body(targetName=f"egress-{name}", targetEgress=egress)
        created = api.post(base, json=body)
        run.responses.append((f"create {name}", created))
        assert created.status_code == 201, created.text
        target_id = created.json()["targets"][0]["targetId"]
        run.target_ids[name] = target_id
        one = f"{base}/{target_id}"
        fetched = api.get(one)
        run.responses.append((f"get {name}", fetched))
        record = fetched.json()["targets"][0]
        assert record["targetEgress"]["hasCredentials"] is True, record
        run.responses.append((f"rename {name}", api.put(one, json={"targetName": f"eg-{name}"})))
        # The answer's own targetEgress (no userinfo) put back keeps the sealed credentials.
        shown = {k: v for k, v in record["targetEgress"].items() if k != "hasCredentials"}
        put_back = {**record, "targetEgress": shown}
        run.responses.append((f"put back {name}", api.put(one, json=put_back)))
    run.responses.append(("list", api.get(base)))

    one = f"{base}/{run.target_ids['http']}"
    for name, bad in BAD_EGRESS.items():
        body = target_body(targetName=f"bad-{name}", targetEgress=bad)
        run.errors.append((f"create {name}", api.post(base, json=body)))
        run.errors.append((f"update {name}", api.put(one, json={"targetEgress": bad})))

    web = WebClient(admin_server.base_url)
    assert web.sign_in_with_token(owner.token).status_code == 302
    _web_egress_form(web, api, run)
    for name, target_id in run.target_ids.items():
        page = web.get(f"/ui/c/{run.client_id}/targets/{target_id}")
        assert page.status_code == 200, (name, page.status_code)
        run.pages[f"target {name}"] = page.text
        test = f"/ui/c/{run.client_id}/targets/{target_id}/test-egress"
        tried = web.post(test, {"csrf_token": web.csrf("/ui/account")})
        assert tried.status_code == 200, (name, tried.status_code)
        assert 'id="egress-test-result"' in tried.text, name  # nothing listens: not reachable
        run.pages[f"test through egress {name}"] = tried.text
    run.pages["targets"] = web.get(f"/ui/c/{run.client_id}/targets").text
    return run


def _web_egress_form(web: WebClient, api: Api, run: EgressRun) -> None:
    """The target form's proxy username and password: refused forms do not show them back
    (nor a URL's userinfo); a saved form seals them."""
    created = api.post(
        f"/api/clients/{run.client_id}/targets", json=target_body(targetName="egress-web")
    )
    assert created.status_code == 201, created.text
    target_id = run.target_ids["web"] = created.json()["targets"][0]["targetId"]
    path = f"/ui/c/{run.client_id}/targets/{target_id}"
    form = {
        "csrf_token": web.csrf(path),
        "name": "egress-web",
        "base_url": created.json()["targets"][0]["targetBaseURL"],
        "test_path": "/",
        "default_effect": "allow",
        "active": "y",
        "egress_mode": "proxy",
    }
    refused = {
        "bad scheme": {"egress_url": f"ftp://{EGRESS_HOST}:21", "egress_username": WEB_USER,
                       "egress_password": WEB_PASSWORD},
        "path in url": {"egress_url": f"http://u:{WEB_URL_PASSWORD}@{EGRESS_HOST}:3128/p"},
        "no port": {"egress_url": f"http://{EGRESS_HOST}", "egress_username": WEB_USER,
                    "egress_password": WEB_PASSWORD},
    }  # fmt: skip
    for name, fields in refused.items():
        page = web.post(path, {**form, **fields})
        assert page.status_code == 200 and 'class="error"' in page.text, (name, page.status_code)
        run.refused_forms[name] = page.text
    fields = {"egress_url": f"http://{EGRESS_HOST}:3129", "egress_username": WEB_USER,
              "egress_password": WEB_PASSWORD}  # fmt: skip
    saved = web.post(path, {**form, **fields})
    assert saved.status_code == 302, (saved.status_code, saved.text)


def test_egress_proxy_credentials_never_come_back_out(egress_run, admin_server):
    """Answers, refusals, web pages, the admin's log, the store file: no username or
    password of a fixed egress proxy; yet they are stored sealed, intact, for the target."""
    assert len(egress_run.responses) == 9
    for label, response in egress_run.responses:
        assert response.status_code in (200, 201), (label, response.text)
        assert not leaked(response.text), label
        for record in response.json()["targets"]:
            if record["targetName"].startswith(("egress-", "eg-")):
                egress = record["targetEgress"]
                assert egress["mode"] == "proxy" and egress["hasCredentials"] is True, label
                assert "@" not in egress["url"], label
    assert len(egress_run.errors) == 2 * len(BAD_EGRESS)
    for label, response in egress_run.errors:
        assert response.status_code == 400, (label, response.text)
        error = response.json()["error"]
        assert error["code"] == "INVALID_INPUT", (label, error)
        assert any(n.startswith("targetEgress") for n in error["details"]["fields"]), label
        assert not leaked(response.text), (label, response.text)
    for name, html in egress_run.pages.items():
        assert EGRESS_HOST in html or name == "targets", name
    shown = {name: leaked(html) for name, html in egress_run.pages.items() if leaked(html)}
    assert not shown, shown
    assert EGRESS_HOST in "".join(egress_run.pages.values())

    log = admin_server.log_text()
    assert f"PUT /api/clients/{egress_run.client_id}/targets/" in log
    assert not leaked(log)
    store = admin_server.store_bytes()
    assert egress_run.client_id.encode() in store
    pairs = (EGRESS_USER, EGRESS_PASSWORD), (SOCKS_USER, SOCKS_PASSWORD), (WEB_USER, WEB_PASSWORD)
    for marker in (*(m for pair in pairs for m in pair), WEB_URL_PASSWORD):
        for form in _store_forms(marker):
            assert form not in store, marker
    for pair in (f"{user}:{password}" for user, password in pairs):
        assert base64.b64encode(pair.encode()) not in store  # a Proxy-Authorization value

    expected = dict(zip(("http", "socks5", "web"), pairs, strict=True))
    ring = KeyRing.parse(TEST_MASTER_KEYS)
    engine = make_engine(admin_server.database_url)
    try:
        with engine.connect() as db:
            for name, target_id in egress_run.target_ids.items():
                stored, key_id, ciphertext = db.execute(
                    text(
                        "SELECT egress, egress_secret_key_id, egress_secret_ciphertext"
                        " FROM targets WHERE id = :id"
                    ),
                    {"id": target_id},
                ).one()
                assert not leaked(json.dumps(stored) if not isinstance(stored, str) else stored)
                opened = ring.open(SealedSecret(key_id, bytes(ciphertext)), egress_aad(target_id))
                assert (opened["username"], opened["password"]) == expected[name], name
    finally:
        engine.dispose()


def test_a_refused_target_form_does_not_show_the_proxy_credentials_back(egress_run):
    """The target form sent back with an error keeps what was typed, but never the proxy's
    username or password, nor a proxy URL's userinfo."""
    assert len(egress_run.refused_forms) == 3
    shown = {name: leaked(html) for name, html in egress_run.refused_forms.items() if leaked(html)}
    assert not shown, shown


# ---- pp_ keys of the pool API: in the answer (or page) that issues them, nowhere else ----

REGISTER_FROM = "127.0.0.77"  # an address of its own: registrations are counted per address


@dataclass
class KeyRun:
    issued: list[tuple[str, str, str]] = field(default_factory=list)  # (where, key, text)
    elsewhere: list[tuple[str, str]] = field(default_factory=list)  # (where, text)

    @property
    def keys(self) -> list[str]:
        return [key for _, key, _ in self.issued]


def _seen(label: str, response: requests.Response) -> tuple[str, str]:
    return label, f"{response.status_code} {response.headers} {response.text}"


@pytest.fixture(scope="module")
def key_run(admin_server, owner) -> KeyRun:
    """Keys issued by registering, by `POST /pool/auth/keys` and on the web account page;
    then every place a key might show again: lists, account answers, refusals, pages."""
    run = KeyRun()
    base = admin_server.base_url
    register = requests.Session()
    register.mount("http://", SourceAddressAdapter(REGISTER_FROM))
    email = f"leak.{uuid4().hex[:8]}@example.test"
    made = register.post(
        f"{base}/pool/auth/register", json={"email": email, "display_name": "Leak"}, timeout=30
    )
    assert made.status_code == 201, made.text
    first = made.json()["api_key"]["key"]
    run.issued.append(("register", first, made.text))
    pool = PoolApi(base, first)
    second = pool.request("POST", "/auth/keys", json={"label": "second"})
    assert second.status_code == 201, second.text
    run.issued.append(("create", second.json()["key"], second.text))

    taken = register.post(f"{base}/pool/auth/register", json={"email": email}, timeout=30)
    run.elsewhere.append(_seen("register again (409)", taken))
    run.elsewhere.append(_seen("bad label", pool.request("POST", "/auth/keys", json={"label": 5})))
    for path in ("/auth/keys", "/account", "/account/credits", "/account/leases"):
        run.elsewhere.append(_seen(f"GET {path}", pool.get(path)))
    second_id = second.json()["id"]
    run.elsewhere.append(_seen("revoke", pool.request("DELETE", f"/auth/keys/{second_id}")))
    revoked = PoolApi(base, second.json()["key"])
    run.elsewhere.append(_seen("revoked key", revoked.get("/account")))
    bare = PoolApi(base, None)
    for scheme in ("", "Basic ", "Bearer  "):  # a key sent the wrong way is not echoed
        answer = bare.get("/account", headers={"Authorization": scheme + first})
        run.elsewhere.append(_seen(f"scheme {scheme!r}", answer))
    run.elsewhere.append(_seen("GET /auth/keys after", pool.get("/auth/keys")))

    web = WebClient(base)
    assert web.sign_in_with_token(owner.token).status_code == 302
    page = web.post("/ui/account", {"ppk-csrf_token": web.csrf("/ui/account"), "ppk-label": "web"})
    assert page.status_code == 200, page.status_code
    assert page.headers["Cache-Control"] == "no-store"  # shown once, kept by no cache
    [on_web] = re.findall(r'<pre id="new-pool-key">(pp_[A-Za-z0-9]+)</pre>', page.text)
    run.issued.append(("web account page", on_web, page.text))
    for path in ("/ui/account", "/ui/pool/leases"):
        shown = web.get(path)
        assert shown.status_code == 200, (path, shown.status_code)
        run.elsewhere.append((f"web {path} afterwards", shown.text))
    return run


def test_pool_keys_show_only_where_they_are_issued(key_run, admin_server):
    """A `pp_` key is in its register/create answer (or the page that created it) and
    nowhere else: not in lists, account answers, refusals, later pages, the admin's log or
    the store (which holds its SHA-256 only)."""
    assert len(key_run.keys) == len(set(key_run.keys)) == 3
    for where, key, text_ in key_run.issued:
        assert text_.count(key) == 1, where
        others = [k for k in key_run.keys if k != key]
        assert not any(k in text_ for k in others), where
    assert len(key_run.elsewhere) > 10
    places = [
        *key_run.elsewhere,
        ("admin log", admin_server.log_text()),
        ("store", admin_server.store_bytes().decode("latin-1")),
    ]
    for where, text_ in places:
        for key in key_run.keys:
            for spelling in _spellings(key):
                assert spelling.decode() not in text_, (where, key[:8])
            assert key[3:] not in text_, (where, key[:8])  # nor its random part alone
    store = admin_server.store_bytes()
    for key in key_run.keys:
        assert hashlib.sha256(key.encode()).hexdigest().encode() in store  # hashed, stored
    listing = next(t for w, t in key_run.elsewhere if w == "GET /auth/keys after")
    assert all(key[:8] in listing for key in key_run.keys[:2])  # the list shows prefixes
