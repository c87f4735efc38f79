"""Bytes that are not UTF-8, wherever a caller can put them, answer 401 (or pass), never 500.

Over raw sockets against a real `run_proxy.py`: raw `\\xff`, `\\xc3\\xa9\\xff`,
lone continuation bytes and an encoded surrogate in `X-API-Key`,
`Authorization` (raw, Bearer, Basic, and Basic whose decoded bytes are not
UTF-8), `?Authorization=` (raw and percent-encoded) and an `apiKey` query
parameter, for every caller credential type, on the Proxy and Async APIs.
Every refusal is 401 in the JSON envelope and the upstream sees nothing. A
granted request carrying such bytes in other headers or the query is matched
by rules, logged, forwarded and delivered like any other.
"""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.proxy_support import CALLER_KEY, HS_SECRET, Setup, logged, wait_until_served
from tests.raw_http import exchange, request

RAW = [b"\xff", b"\xc3\xa9\xff", b"\x80\xbf", b"\xed\xa0\x80", CALLER_KEY.encode() + b"\xff"]
_marks = itertools.count(1)


def mark() -> str:
    return f"utf-{next(_marks)}"


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rs_token() -> str:
    claims = {"aud": "gateway", "exp": datetime.now(UTC) + timedelta(1)}
    return jwt.encode(claims, RSA_KEY, algorithm="RS256", headers={"kid": "k-non-utf8"})


def hs_token() -> str:
    claims = {"iss": "https://idp.test", "aud": "gateway", "exp": datetime.now(UTC) + timedelta(1)}
    return jwt.encode(claims, HS_SECRET, algorithm="HS256")


CALLERS = {
    "apiKey-header": (
        {"credentialAuthType": "apiKey", "credentialSecret": {"key": "X-API-Key", "value": "k-1"}},
        {"X-API-Key": "k-1"},
    ),
    "apiKey-query": (
        {"credentialAuthType": "apiKey", "credentialSecret": {"value": "k-1", "query": "apiKey"}},
        {"Authorization": "k-1"},
    ),
    "bearer": (
        {"credentialAuthType": "bearer", "credentialSecret": {"token": "b-1"}},
        {"Authorization": "Bearer b-1"},
    ),
    "basicAuth": (
        {"credentialAuthType": "basicAuth", "credentialSecret": {"username": "u", "password": "p"}},
        {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()},
    ),
    "jwtVerify": (
        {
            "credentialAuthType": "jwtVerify",
            "credentialSecret": {
                "secret": HS_SECRET,
                "issuer": "https://idp.test",
                "audience": "gateway",
            },
        },
        {"Authorization": "Bearer " + hs_token()},
    ),
    "jwtVerify-jwks": (
        {
            "credentialAuthType": "jwtVerify",
            "credentialSecret": {"jwksUrl": "{upstream}/jwks.json", "audience": "gateway"},
        },
        {"Authorization": "Bearer " + rs_token()},
    ),
}


def placements(raw: bytes) -> list[tuple[list[tuple[bytes, bytes]], bytes]]:
    """(header fields, query string) pairs carrying `raw` in each credential location."""
    percent = b"".join(b"%%%02X" % byte for byte in raw)
    basic_raw = base64.b64encode(b"u:" + raw)
    return [
        ([(b"X-API-Key", raw)], b""),
        ([(b"Authorization", raw)], b""),
        ([(b"Authorization", b"Bearer " + raw)], b""),
        ([(b"Authorization", b"Basic " + raw)], b""),
        ([(b"Authorization", b"Basic " + basic_raw)], b""),
        ([], b"Authorization=" + raw),
        ([], b"Authorization=" + percent),
        ([], b"Authorization=Bearer%20" + percent),
        ([], b"apiKey=" + raw),
        ([], b"apiKey=" + percent),
    ]


@pytest.fixture(scope="module")
def proxies(admin_server, owner, upstream, gateway):
    from tests.support import Api

    api = Api(admin_server.base_url, owner.token)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True)
    # The upstream's JWKS is shared by the session: add this key, keep the others.
    upstream.jwks = {
        "keys": [
            *upstream.jwks.get("keys", []),
            {**public, "kid": "k-non-utf8", "use": "sig", "alg": "RS256"},
        ]
    }
    made = {}
    for name, (caller, good) in CALLERS.items():
        secret = caller["credentialSecret"]
        if "jwksUrl" in secret:
            url = secret["jwksUrl"].replace("{upstream}", upstream.base_url)
            caller = {**caller, "credentialSecret": {**secret, "jwksUrl": url}}
        setup = Setup(api, upstream, caller=caller)
        path = f"/api/{setup.id}/ready" + ("?apiKey=k-1" if name == "apiKey-query" else "")
        ready = wait_until_served(gateway, path, good, lambda r: r.status_code == 200)
        assert ready.status_code == 200, (name, ready.text)
        made[name] = setup
    return made


@pytest.mark.parametrize("prefix", ["api", "async"])
@pytest.mark.parametrize("caller", CALLERS)
def test_non_utf8_credentials_answer_401_and_reach_nothing(
    proxies, gateway, upstream, prefix, caller
):
    setup = proxies[caller]
    since = len(upstream.started)
    markers = []
    for raw in RAW:
        for fields, query in placements(raw):
            marker = mark()
            markers.append(marker)
            target = f"/{prefix}/{setup.id}/{marker}".encode() + (b"?" + query if query else b"")
            answer = exchange(
                gateway.base_url, request(b"GET", target, [(b"Host", b"gw"), *fields])
            )
            assert answer.status == 401, (fields, query, answer.raw[:300])
            body = answer.json()
            assert body["error"]["code"] == "UNAUTHORIZED"
            assert answer.header("requestrocket-proxy-code") == "proxy-access-denied"
            assert answer.header("portcullis-request-id")
    assert not [p for p in upstream.started[since:] if any(m in p for m in markers)]


def test_granted_requests_carry_non_utf8_bytes_through_rules_logs_and_delivery(
    api, setup, gateway, upstream
):
    deny = setup.rule(
        f"proxies/{setup.id}",
        {"effect": "deny", "headerChecks": [{"namePattern": "^x-tag$", "valuePattern": "^evil"}]},
    )
    query_deny = setup.rule(
        f"targets/{setup.target['sKey']}",
        {"effect": "deny", "queryChecks": [{"namePattern": "^tag$", "valuePattern": "^evil"}]},
    )
    key = (b"X-API-Key", CALLER_KEY.encode())
    wait_until_served(
        gateway,
        f"/api/{setup.id}/x",
        {"X-API-Key": CALLER_KEY, "X-Tag": "evil"},
        lambda r: r.status_code == 403,
    )

    def send(prefix: str, marker: str, fields, query: bytes = b""):
        target = f"/{prefix}/{setup.id}/{marker}".encode() + (b"?" + query if query else b"")
        return exchange(gateway.base_url, request(b"GET", target, [(b"Host", b"gw"), key, *fields]))

    denied = send("api", mark(), [(b"X-Tag", b"evil\xff")])
    assert denied.status == 403 and denied.json()["error"]["details"]["ruleId"] == deny["ruleId"]
    denied = send("api", mark(), [], b"tag=evil%FF")
    assert denied.json()["error"]["details"]["ruleId"] == query_deny["ruleId"]
    denied = send("api", mark(), [], b"tag=evil\xff")
    assert denied.json()["error"]["details"]["ruleId"] == query_deny["ruleId"]
    # The upstream client would drop the byte and send `X-Role: admin`: rules must not
    # see something else than the target gets.
    role_deny = setup.rule(
        f"proxies/{setup.id}",
        {
            "effect": "deny",
            "headerChecks": [{"namePattern": "^x-role$", "valuePattern": "^admin$"}],
        },
    )
    wait_until_served(
        gateway,
        f"/api/{setup.id}/x",
        {"X-API-Key": CALLER_KEY, "X-Role": "admin"},
        lambda r: r.status_code == 403,
    )
    marker = mark()
    sent = send("api", marker, [(b"X-Role", b"adm\xffin")])
    assert sent.status == 200, sent.raw[:300]
    received = next(r for r in upstream.wait_for(1) if r.path == f"/base/{marker}")
    role = [value for name, value in received.headers if name.lower() == "x-role"]
    assert role == ["adm\ufffdin".encode().decode("latin-1")]  # what the rule saw, not "admin"
    assert role_deny["ruleId"]

    marker = granted_marker = mark()
    granted = send("api", marker, [(b"X-Tag", b"\xc3\xa9\xff"), (b"X-Other", b"\x80")], b"q=\xff")
    assert granted.status == 200, granted.raw[:300]
    entry = logged(api, setup, granted.header("portcullis-request-id"))
    assert entry["requestId"] == granted.header("portcullis-request-id")
    assert upstream.wait_started(f"/base/{marker}")

    # A header *name* that is not a token is malformed HTTP (mitmproxy refuses it).
    malformed = send("api", mark(), [(b"X-Other\xff", b"v")])
    assert malformed.status == 400 and malformed.json()["error"]["code"] == "MALFORMED_REQUEST"

    marker = mark()
    queued = send("async", marker, [(b"X-Tag", b"\xc3\xa9\xff")], b"q=%FF")
    assert queued.status == 202, queued.raw[:300]
    assert upstream.wait_started(f"/base/{marker}", timeout=30)
    for sent, query in ((granted_marker, "q=%FF"), (marker, "q=%FF")):
        received = next(r for r in upstream.wait_for(1) if r.path == f"/base/{sent}")
        assert received.query == query  # the raw byte, percent-encoded
        tag = [value for name, value in received.headers if name.lower() == "x-tag"]
        # The valid bytes as sent, the invalid one as U+FFFD, as the rules saw it.
        assert tag == ["é\ufffd".encode().decode("latin-1")]
