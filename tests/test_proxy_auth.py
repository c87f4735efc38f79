"""Proxy credential checks for each auth type: accepted, missing, wrong, inactive, expired."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from mitmproxy.http import Headers

from addons.proxy_auth import AuthFailure, Presented, QueryOnce, authenticate
from addons.snapshot import CredentialView
from models.rule_engine import build_scope

# PyJWT checks `exp` against the real clock, so the tokens here are dated from it.
NOW = datetime.now(UTC).replace(microsecond=0)
HS_SECRET = "k" * 32


def credential(auth_type: str, secret: dict, settings: dict | None = None, **fields):
    values = {
        "id": "cred_test",
        "client_id": "cli_test",
        "credential_type": "proxy",
        "auth_type": auth_type,
        "active": True,
        "expires_at": None,
        "settings": settings or {},
        "secret": secret,
        "scope": build_scope("proxyCredential", "allow", []),
    }
    return CredentialView(**{**values, **fields})


def presented(headers: dict | None = None, query: dict | None = None) -> Presented:
    return Presented(
        Headers(**{k.replace("-", "_"): v for k, v in (headers or {}).items()}), query or {}
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def token(claims: dict, key: str = HS_SECRET, algorithm: str = "HS256") -> str:
    return "Bearer " + jwt.encode(claims, key, algorithm=algorithm)


API_KEY = credential("apiKey", {"value": "k-123"}, {"in": "header", "name": "X-API-Key"})
BEARER = credential("bearer", {"token": "t-123"}, {"header": "Authorization", "prefix": "Bearer"})
BASIC = credential("basicAuth", {"username": "svc", "password": "pw"})
JWT_CRED = credential("jwt", {"token": "a.b.c"}, {"header": "Authorization", "prefix": "Bearer"})
VERIFY = credential(
    "jwtVerify",
    {"secret": HS_SECRET},
    {"algorithms": ["HS256"], "issuer": "https://idp", "audience": "gw", "leewaySeconds": 0},
)
GOOD_CLAIMS = {"iss": "https://idp", "aud": "gw", "exp": NOW + timedelta(hours=1)}


@pytest.mark.parametrize(
    ("cred", "request_parts"),
    [
        (API_KEY, presented({"X-API-Key": "k-123"})),
        (API_KEY, presented({"Authorization": "k-123"})),
        (API_KEY, presented(query={"Authorization": "k-123"})),
        (BEARER, presented({"Authorization": "Bearer t-123"})),
        (BEARER, presented({"Authorization": "bearer t-123"})),
        (BASIC, presented({"Authorization": basic("svc", "pw")})),
        (JWT_CRED, presented({"Authorization": "Bearer a.b.c"})),
        (VERIFY, presented({"Authorization": token(GOOD_CLAIMS)})),
        (VERIFY, presented(query={"Authorization": token(GOOD_CLAIMS)})),
    ],
)
def test_accepted(cred, request_parts):
    authenticate(cred, request_parts, NOW)


@pytest.mark.parametrize(
    ("cred", "request_parts", "reason"),
    [
        (API_KEY, presented(), "missing"),
        (API_KEY, presented({"X-API-Key": "k-124"}), "invalid"),
        (BEARER, presented({"Authorization": "t-123"}), "invalid"),
        (BEARER, presented({"Authorization": "Token t-123"}), "invalid"),
        (BASIC, presented({"Authorization": basic("svc", "wrong")}), "invalid"),
        (BASIC, presented({"Authorization": "Basic !!notbase64"}), "invalid"),
        (BASIC, presented({"Authorization": basic("svc", "")}), "invalid"),
        (JWT_CRED, presented({"Authorization": "Bearer a.b.d"}), "invalid"),
        (VERIFY, presented(), "missing"),
        (VERIFY, presented({"Authorization": token(GOOD_CLAIMS, key="x" * 32)}), "invalid"),
        (VERIFY, presented({"Authorization": token({**GOOD_CLAIMS, "aud": "other"})}), "invalid"),
        (VERIFY, presented({"Authorization": token({**GOOD_CLAIMS, "iss": "evil"})}), "invalid"),
        (
            VERIFY,
            presented({"Authorization": token({**GOOD_CLAIMS, "exp": NOW - timedelta(days=400)})}),
            "expired",
        ),
        (
            VERIFY,
            presented({"Authorization": token({"iss": "https://idp", "aud": "gw"})}),
            "invalid",
        ),
        (
            VERIFY,
            presented({"Authorization": token(GOOD_CLAIMS, algorithm="HS512")}),
            "invalid",
        ),
        (
            VERIFY,
            presented(
                {"Authorization": token({**GOOD_CLAIMS, "nbf": datetime.now(UTC) + timedelta(1)})}
            ),
            "invalid",
        ),
    ],
)
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_refused(cred, request_parts, reason):
    with pytest.raises(AuthFailure) as failure:
        authenticate(cred, request_parts, datetime.now(UTC))
    assert failure.value.reason == reason


def test_inactive_and_expired_credentials_are_told_apart():
    good = presented({"X-API-Key": "k-123"})
    inactive = credential("apiKey", {"value": "k-123"}, API_KEY.settings, active=False)
    expired = credential(
        "apiKey", {"value": "k-123"}, API_KEY.settings, expires_at=NOW - timedelta(seconds=1)
    )
    with pytest.raises(AuthFailure, match="inactive"):
        authenticate(inactive, good, NOW)
    with pytest.raises(AuthFailure, match="expired"):
        authenticate(expired, good, NOW)


RAW_BYTES = [b"\xff", b"\xc3\xa9\xff", b"\x80\x80", b"k-123\xff", b"\xed\xa0\x80", b"\xc3"]


def raw_presented(header: bytes, value: bytes, query: bytes = b"") -> Presented:
    """What mitmproxy hands over for raw bytes: its own Headers and query decoding."""
    headers = Headers(fields=((header, value),)) if header else Headers()
    return Presented(headers, QueryOnce(query.decode("utf-8", "surrogateescape")))


def raw_forms(raw: bytes) -> list[Presented]:
    b64 = base64.b64encode(b"svc:" + raw)
    return [
        raw_presented(b"X-API-Key", raw),
        raw_presented(b"X-API-Key", b"k-123" + raw),
        raw_presented(b"Authorization", raw),
        raw_presented(b"Authorization", b"Bearer " + raw),
        raw_presented(b"Authorization", b"Basic " + raw),
        raw_presented(b"Authorization", b"Basic " + b64),
        raw_presented(b"", b"", b"Authorization=" + raw),
        raw_presented(b"", b"", b"Authorization=" + b"".join(b"%%%02x" % c for c in raw)),
        raw_presented(b"", b"", b"apiKey=" + raw),
    ]


@pytest.mark.parametrize("raw", RAW_BYTES)
@pytest.mark.parametrize("cred", [API_KEY, BEARER, BASIC, JWT_CRED, VERIFY])
def test_bytes_that_are_not_utf8_are_compared_as_bytes_and_refused(cred, raw):
    for request_parts in raw_forms(raw):
        with pytest.raises(AuthFailure) as failure:
            authenticate(cred, request_parts, NOW)
        assert failure.value.reason in ("invalid", "missing")


def test_a_secret_matches_only_its_own_utf8_bytes():
    cred = credential("apiKey", {"value": "k-é"}, {"in": "header", "name": "X-API-Key"})
    authenticate(cred, raw_presented(b"X-API-Key", "k-é".encode()), NOW)
    for wrong in ("k-é".encode("latin-1"), "k-\ufffd".encode(), b"k-\xc3"):
        with pytest.raises(AuthFailure):
            authenticate(cred, raw_presented(b"X-API-Key", wrong), NOW)
    query_cred = credential("apiKey", {"value": "k-é"}, {"in": "query", "name": "apiKey"})
    authenticate(query_cred, raw_presented(b"", b"", b"apiKey=k-%C3%A9"), NOW)
    with pytest.raises(AuthFailure):
        authenticate(query_cred, raw_presented(b"", b"", b"apiKey=k-%E9"), NOW)


def test_basic_auth_compares_the_decoded_bytes():
    cred = credential("basicAuth", {"username": "svc", "password": "pw-é"})
    good = base64.b64encode("svc:pw-é".encode())
    authenticate(cred, raw_presented(b"Authorization", b"Basic " + good), NOW)
    latin = base64.b64encode("svc:pw-é".encode("latin-1"))
    with pytest.raises(AuthFailure):
        authenticate(cred, raw_presented(b"Authorization", b"Basic " + latin), NOW)


@pytest.mark.parametrize("part", ["header", "payload"])
def test_a_jwt_whose_json_nests_too_deeply_is_refused_without_parsing_it(part):
    def segment(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    deep = segment(b"[" * 5000 + b"]" * 5000)
    header = deep if part == "header" else segment(b'{"alg":"HS256","typ":"JWT"}')
    payload = deep if part == "payload" else segment(b"{}")
    raw_token = f"{header}.{payload}.{segment(b'signature')}"
    with pytest.raises(AuthFailure) as failure:
        authenticate(VERIFY, presented({"Authorization": "Bearer " + raw_token}), NOW)
    assert failure.value.reason == "invalid"
    assert "nests deeper than 64 levels" in failure.value.message
    assert "recursion" not in failure.value.message
