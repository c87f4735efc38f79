"""The Proxy API end to end: a real admin, a real mitmdump with the addons, a real upstream."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests

from tests.proxy_support import (
    CALLER_KEY,
    HS_SECRET,
    TARGET_TOKEN,
    Setup,
    call,
    served_setup,
    start_proxy,
    wait_until_served,
)
from tests.support import Api


@pytest.fixture(scope="module")
def served(admin_server, owner, upstream, gateway) -> Setup:
    """A proxy no test here changes, shared by the tests that only send through it (each
    counts the target's requests from its own start); tests that change their proxy, its
    rules or credentials take a fresh one (`setup`)."""
    return served_setup(Api(admin_server.base_url, owner.token), upstream, gateway)


def last(upstream):
    return upstream.received[-1]


def header(received, name: str) -> list[str]:
    return [v for k, v in received.headers if k.lower() == name.lower()]


def test_granted_request_reaches_the_target_with_the_target_credential(served, gateway, upstream):
    before = len(upstream.received)
    response = call(
        gateway,
        "POST",
        f"/api/{served.id}//v1/customers/?limit=5&Authorization={CALLER_KEY}",
        headers={"X-API-Key": CALLER_KEY, "X-Trace": "t1"},
        json={"name": "Ada"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["requestrocket-proxy-code"] == "proxy-access-granted"
    assert response.headers["portcullis-request-id"]
    received = upstream.wait_for(before + 1)[-1]
    assert (received.method, received.path, received.query) == (
        "POST",
        "/base/v1/customers/",
        "limit=5",
    )
    assert header(received, "Authorization") == [f"Bearer {TARGET_TOKEN}"]
    assert header(received, "X-API-Key") == [] and header(received, "X-Trace") == ["t1"]
    assert received.body == b'{"name": "Ada"}'
    assert CALLER_KEY not in str(received)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "missing"), ({"X-API-Key": "wrong"}, "invalid"), ({"Authorization": "wrong"}, "invalid")],
)
def test_wrong_or_missing_credential_is_401_and_nothing_is_forwarded(
    served, gateway, upstream, headers, reason
):
    before = len(upstream.received)
    response = call(gateway, "GET", f"/api/{served.id}/v1/x", headers=headers)
    assert response.status_code == 401
    assert response.headers["requestrocket-proxy-code"] == "proxy-access-denied"
    assert response.json()["error"]["details"]["reason"] == reason
    assert len(upstream.received) == before


def test_unknown_proxy_is_404(gateway):
    response = call(gateway, "GET", "/api/proxy_doesnotexist/x", headers={"X-API-Key": CALLER_KEY})
    assert response.status_code == 404
    assert response.headers["requestrocket-proxy-code"] == "proxy-access-denied"


def test_inactive_proxy_is_403_and_reactivation_is_live(api, setup, gateway):
    path, headers = f"/api/{setup.id}/v1/x", {"X-API-Key": CALLER_KEY}
    api.put(f"{setup.base}/proxies/{setup.id}", json={"proxyActive": False})
    refused = wait_until_served(gateway, path, headers, lambda r: r.status_code == 403)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "PROXY_INACTIVE"
    api.put(f"{setup.base}/proxies/{setup.id}", json={"proxyActive": True})
    assert wait_until_served(gateway, path, headers, lambda r: r.status_code == 200).ok


@pytest.mark.parametrize(
    "path",
    ["/%2e%2e/secret", "/v1/%2E%2E/%2E%2E/secret", "/v1%2f..%2fsecret", "/%252e%252e/secret"],
)
def test_path_escapes_are_refused_before_the_target(served, gateway, upstream, path):
    before = len(upstream.received)
    response = requests.get(
        f"{gateway.base_url}/api/{served.id}{path}", headers={"X-API-Key": CALLER_KEY}, timeout=15
    )
    assert response.status_code == 400
    assert len(upstream.received) == before


def test_rules_deny_by_scope_and_name_the_rule(api, setup, gateway, upstream):
    deny = setup.rule(f"proxies/{setup.id}", {"effect": "deny", "methods": ["DELETE"]})
    target_rule = setup.rule(
        f"targets/{setup.target['sKey']}",
        {"effect": "deny", "queryChecks": [{"namePattern": "^debug$"}]},
    )
    headers = {"X-API-Key": CALLER_KEY}
    denied = wait_until_served(
        gateway, f"/api/{setup.id}/v1/x?debug=1", headers, lambda r: r.status_code == 403
    )
    assert denied.json()["error"]["details"] == {"scope": "target", "ruleId": target_rule["ruleId"]}
    before = len(upstream.received)
    deleted = call(gateway, "DELETE", f"/api/{setup.id}/v1/x", headers=headers)
    assert deleted.status_code == 403
    assert deleted.json()["error"]["details"] == {"scope": "proxy", "ruleId": deny["ruleId"]}
    assert call(gateway, "GET", f"/api/{setup.id}/v1/x", headers=headers).status_code == 200
    assert len(upstream.received) == before + 1


def test_default_deny_on_the_caller_credential_scope(api, setup, gateway):
    api.put(
        f"{setup.base}/credentials/{setup.caller['sKey']}",
        json={"credentialDefaultRuleEffect": "deny"},
    )
    headers = {"X-API-Key": CALLER_KEY}
    denied = wait_until_served(
        gateway, f"/api/{setup.id}/v1/x", headers, lambda r: r.status_code == 403
    )
    assert denied.json()["error"]["details"] == {"scope": "proxyCredential", "ruleId": None}
    allow = setup.rule(
        f"credentials/{setup.caller['sKey']}", {"effect": "allow", "pathPattern": "^/v1/"}
    )
    allowed = wait_until_served(
        gateway, f"/api/{setup.id}/v1/x", headers, lambda r: r.status_code == 200
    )
    assert allowed.ok and allow["ruleId"]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def hs_token(**claims) -> str:
    payload = {"iss": "https://idp.test", "aud": "gateway", "exp": datetime.now(UTC) + timedelta(1)}
    return "Bearer " + jwt.encode({**payload, **claims}, HS_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("caller", "good", "bad"),
    [
        (
            {"credentialAuthType": "bearer", "credentialSecret": {"token": "b-123"}},
            "Bearer b-123",
            "Bearer b-124",
        ),
        (
            {
                "credentialAuthType": "basicAuth",
                "credentialSecret": {"username": "u", "password": "p"},
            },
            basic("u", "p"),
            basic("u", "x"),
        ),
        (
            {"credentialAuthType": "jwt", "credentialSecret": {"token": "aa.bb.cc"}},
            "Bearer aa.bb.cc",
            "Bearer aa.bb.cd",
        ),
        (
            {
                "credentialAuthType": "jwtVerify",
                "credentialSecret": {
                    "secret": HS_SECRET,
                    "issuer": "https://idp.test",
                    "audience": "gateway",
                },
            },
            hs_token(),
            hs_token(aud="someone-else"),
        ),
    ],
    ids=["bearer", "basicAuth", "jwt", "jwtVerify-hs"],
)
def test_each_proxy_auth_type(api, upstream, gateway, caller, good, bad):
    made = Setup(api, upstream, caller=caller)
    ok = wait_until_served(gateway, f"/api/{made.id}/x", {"Authorization": good})
    assert ok.status_code == 200, ok.text
    assert (
        call(gateway, "GET", f"/api/{made.id}/x", headers={"Authorization": bad}).status_code == 401
    )


def test_jwks_verification_checks_signature_and_audience(api, upstream, gateway):
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    upstream.jwks = {"keys": [{**public_jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}
    caller = {
        "credentialAuthType": "jwtVerify",
        "credentialSecret": {"jwksUrl": upstream.base_url + "/jwks.json", "audience": "gateway"},
    }
    made = Setup(api, upstream, caller=caller)
    claims = {"aud": "gateway", "exp": datetime.now(UTC) + timedelta(hours=1)}

    def bearer(signing_key, **extra):
        token = jwt.encode(
            {**claims, **extra}, signing_key, algorithm="RS256", headers={"kid": "k1"}
        )
        return {"Authorization": f"Bearer {token}"}

    ok = wait_until_served(gateway, f"/api/{made.id}/x", bearer(key))
    assert ok.status_code == 200, ok.text
    for headers in (bearer(other), bearer(key, aud="other"), bearer(key, exp=1)):
        assert call(gateway, "GET", f"/api/{made.id}/x", headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("target", "expect_headers", "expect_query"),
    [
        (
            {
                "credentialAuthType": "apiKey",
                "credentialSecret": {"value": "TK", "header": "X-Key"},
            },
            {"X-Key": "TK"},
            "",
        ),
        (
            {"credentialAuthType": "apiKey", "credentialSecret": {"value": "TK", "query": "key"}},
            {},
            "key=TK",
        ),
        (
            {
                "credentialAuthType": "basicAuth",
                "credentialSecret": {"username": "u", "password": "p"},
            },
            {"Authorization": basic("u", "p")},
            "",
        ),
        (
            {
                "credentialAuthType": "custom",
                "credentialSecret": {"headers": {"X-One": "1", "X-Two": "2"}},
            },
            {"X-One": "1", "X-Two": "2"},
            "",
        ),
        ({"credentialAuthType": "none"}, {}, ""),
    ],
    ids=["apiKey-header", "apiKey-query", "basicAuth", "custom", "none"],
)
def test_each_target_injection_type(api, upstream, gateway, target, expect_headers, expect_query):
    made = Setup(api, upstream, target=target)
    response = wait_until_served(gateway, f"/api/{made.id}/echo", {"X-API-Key": CALLER_KEY})
    assert response.status_code == 200, response.text
    received = last(upstream)
    for name, value in expect_headers.items():
        assert header(received, name) == [value]
    assert received.query == expect_query
    if not expect_headers:
        assert header(received, "Authorization") == []


def test_additional_headers_query_and_data(api, upstream, gateway):
    made = Setup(
        api,
        upstream,
        proxyAdditionalHeaders={"X-Team": "payments"},
        proxyAdditionalQueryParams={"version": "2"},
        proxyAdditionalData={"source": "gateway"},
    )
    wait_until_served(gateway, f"/api/{made.id}/x", {"X-API-Key": CALLER_KEY})
    response = call(
        gateway, "PATCH", f"/api/{made.id}/x?a=1", headers={"X-API-Key": CALLER_KEY}, json={"n": 1}
    )
    assert response.ok
    received = last(upstream)
    assert header(received, "X-Team") == ["payments"] and received.query == "a=1&version=2"
    assert received.body == b'{"n": 1, "source": "gateway"}'


def test_alias_routes_and_two_clients_may_share_one(api, upstream, gateway):
    first = Setup(api, upstream, alias="shared-e2e")
    second = Setup(
        api,
        upstream,
        alias="shared-e2e",
        caller={"credentialAuthType": "apiKey", "credentialSecret": {"value": "second-key"}},
    )
    for headers in ({"X-API-Key": CALLER_KEY}, {"Authorization": "second-key"}):
        ok = wait_until_served(gateway, "/api/shared-e2e/x", headers, lambda r: r.ok)
        assert ok.status_code == 200, ok.text
    assert (
        call(gateway, "GET", "/api/shared-e2e/x", headers={"Authorization": "third"}).status_code
        == 401
    )
    assert first.id != second.id


def test_oversized_response_is_413_with_the_seed_body(served, gateway):
    response = call(
        gateway,
        "GET",
        f"/api/{served.id}/bytes/{7 * 1024 * 1024}",
        headers={"X-API-Key": CALLER_KEY},
    )
    assert response.status_code == 413
    assert response.headers["requestrocket-proxy-code"] == "response-too-large"
    body = response.json()
    assert body["error"] == "Payload Too Large" and body["limit"] == "6 MB"
    assert body["responseSize"] == "7 MB"


def test_target_secret_never_reaches_the_mitmdump_output(admin_server, served, tmp_path):
    watched = start_proxy(admin_server, tmp_path, "--set", "flow_detail=3")
    try:
        # /status/200 does not echo the request back: an echoing target's body is its own output.
        response = requests.get(
            f"{watched.base_url}/api/{served.id}/status/200",
            headers={"X-API-Key": CALLER_KEY},
            timeout=15,
        )
        assert response.ok
    finally:
        watched.stop()
    log = watched.log_text()
    assert "[REDACTED]" in log, "flow_detail=3 prints the forwarded headers"
    assert TARGET_TOKEN not in log and CALLER_KEY not in log


def test_an_exception_in_a_stage_answers_500_and_forwards_nothing(
    admin_server, served, upstream, tmp_path
):
    broken = start_proxy(admin_server, tmp_path, "-s", "tests/fault_injection.py")
    try:
        before = len(upstream.received)
        response = requests.get(
            f"{broken.base_url}/api/{served.id}/x", headers={"X-API-Key": CALLER_KEY}, timeout=15
        )
        assert response.status_code == 500
        assert response.headers["requestrocket-proxy-code"] == "gateway-error"
        assert len(upstream.received) == before
        assert "injected fault" in broken.log_text()
    finally:
        broken.stop()


def test_other_region_is_421(admin_server, served, tmp_path):
    other = start_proxy(admin_server, tmp_path, "--region", "eu-west-1")
    try:
        response = requests.get(
            f"{other.base_url}/api/{served.id}/x", headers={"X-API-Key": CALLER_KEY}, timeout=15
        )
        assert response.status_code == 421
        assert response.headers["requestrocket-proxy-code"] == "proxy-access-denied"
    finally:
        other.stop()


def test_large_request_bodies_stream_through_after_the_checks(served, gateway, upstream):
    body = b"y" * (3 * 1024 * 1024)
    path = f"/api/{served.id}/upload"
    refused = call(gateway, "POST", path, headers={"X-API-Key": "wrong"}, data=body)
    assert refused.status_code == 401
    chunked = call(gateway, "POST", path, headers={"X-API-Key": "wrong"}, data=iter([body]))
    assert chunked.status_code == 401 and chunked.json()["error"]["code"] == "UNAUTHORIZED"
    assert "has crashed" not in gateway.log_text(), "refused bodies are drained, not mishandled"
    before = len(upstream.received)
    response = call(gateway, "POST", path, headers={"X-API-Key": CALLER_KEY}, data=body)
    assert response.status_code == 200, response.text
    received = upstream.wait_for(before + 1)[-1]
    assert received.body == body
    assert header(received, "Authorization") == [f"Bearer {TARGET_TOKEN}"]
    assert len(upstream.received) == before + 1, "the refused upload never reached the target"


def test_a_large_upload_reaches_the_target_while_the_caller_is_still_sending(
    served, gateway, upstream
):
    """Streamed, not held: the rest of the body is sent only once the target sees the request."""
    seen_while_sending = []

    def body():
        yield b"a" * (2 * 1024 * 1024)  # past stream_large_bodies (1 MB), chunked
        seen_while_sending.append(upstream.wait_started("/base/streaming-upload"))
        yield b"b" * 1024

    response = call(
        gateway,
        "POST",
        f"/api/{served.id}/streaming-upload",
        headers={"X-API-Key": CALLER_KEY},
        data=body(),
    )
    assert response.status_code == 200, response.text
    assert seen_while_sending == [True], "the gateway held the body instead of streaming it"
    received = [r for r in upstream.received if r.path == "/base/streaming-upload"][-1]
    assert received.body == b"a" * (2 * 1024 * 1024) + b"b" * 1024


def test_the_ssrf_guard_refuses_loopback_targets_unless_allowed(
    admin_server, served, upstream, tmp_path
):
    guarded = start_proxy(admin_server, tmp_path, allow_loopback=False)
    try:
        before = len(upstream.received)
        response = requests.get(
            f"{guarded.base_url}/api/{served.id}/x", headers={"X-API-Key": CALLER_KEY}, timeout=15
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "TARGET_ADDRESS_NOT_ALLOWED"
        assert len(upstream.received) == before
    finally:
        guarded.stop()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"credentialActive": False}, "inactive"),
        ({"credentialExpiresAt": "2020-01-01T00:00:00Z"}, "expired"),
    ],
)
def test_an_inactive_or_expired_caller_credential_is_401_saying_so(
    api, setup, gateway, upstream, change, reason
):
    updated = api.put(f"{setup.base}/credentials/{setup.caller['sKey']}", json=change)
    assert updated.status_code == 200, updated.text
    path, headers = f"/api/{setup.id}/x", {"X-API-Key": CALLER_KEY}
    refused = wait_until_served(gateway, path, headers, lambda r: r.status_code == 401)
    assert refused.status_code == 401
    assert refused.json()["error"]["details"]["reason"] == reason
    assert reason in refused.json()["message"]
    before = len(upstream.received)
    assert call(gateway, "GET", path, headers=headers).status_code == 401
    assert len(upstream.received) == before


def test_target_credential_scope_checks_header_values_and_deny_wins(api, setup, gateway):
    scope = f"credentials/{setup.target_cred['sKey']}"
    setup.rule(
        scope, {"effect": "allow", "priority": 100, "headerChecks": [{"namePattern": "^x-tier$"}]}
    )
    deny = setup.rule(
        scope,
        {"effect": "deny", "headerChecks": [{"namePattern": "^x-tier$", "valuePattern": "^free$"}]},
    )
    path, auth = f"/api/{setup.id}/x", {"X-API-Key": CALLER_KEY}
    denied = wait_until_served(
        gateway, path, {**auth, "X-Tier": "free"}, lambda r: r.status_code == 403
    )
    assert denied.json()["error"]["details"] == {
        "scope": "targetCredential",
        "ruleId": deny["ruleId"],
    }
    assert call(gateway, "GET", path, headers={**auth, "X-Tier": "gold"}).status_code == 200
