"""What leaves the gateway: the caller's credential out, the target credential in."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from mitmproxy.http import Headers

from addons.injection import prepare_upstream
from addons.snapshot import CredentialView, ProxyView, TargetView
from models.credential_parts import UnsupportedInjection, target_credential_parts
from models.rule_engine import build_scope


def cred(kind: str, auth_type: str, secret: dict, settings: dict | None = None) -> CredentialView:
    return CredentialView(
        id=f"cred_{auth_type}",
        client_id="cli_1",
        credential_type=kind,
        auth_type=auth_type,
        active=True,
        expires_at=None,
        settings=settings or {},
        secret=secret,
        scope=build_scope(f"{kind}Credential", "allow", []),
    )


CALLER_KEY = cred("proxy", "apiKey", {"value": "caller"}, {"in": "header", "name": "X-API-Key"})


def proxy(target_credential: CredentialView, caller=CALLER_KEY, **extra) -> ProxyView:
    values = {
        "id": "proxy_1",
        "client_id": "cli_1",
        "created_by": None,
        "alias": None,
        "region": "r1",
        "active": True,
        "proxy_credential": caller,
        "target": TargetView(
            "tgt_1", urlsplit("http://127.0.0.1:1/"), True, build_scope("target", "allow", [])
        ),
        "target_credential": target_credential,
        "scope": build_scope("proxy", "allow", []),
        "additional_headers": {},
        "additional_query_params": {},
        "additional_data": {},
        "max_requests_per_minute": 1000,
        "max_requests_per_day": 20000,
    }
    return ProxyView(**{**values, **extra})


def caller_headers(**extra) -> Headers:
    return Headers(
        X_API_Key="caller",
        Authorization="caller",
        Connection="keep-alive, X-Hop",
        X_Hop="1",
        Keep_Alive="timeout=5",
        Accept="application/json",
        **extra,
    )


@pytest.mark.parametrize(
    ("target", "headers", "query"),
    [
        (
            cred("target", "apiKey", {"value": "T"}, {"in": "header", "name": "X-Key"}),
            {"X-Key": "T"},
            [],
        ),
        (
            cred("target", "apiKey", {"value": "T&x"}, {"in": "query", "name": "key"}),
            {},
            ["key=T%26x"],
        ),
        (
            cred(
                "target", "bearer", {"token": "T"}, {"header": "Authorization", "prefix": "Token"}
            ),
            {"Authorization": "Token T"},
            [],
        ),
        (
            cred(
                "target", "jwt", {"token": "a.b.c"}, {"header": "Authorization", "prefix": "Bearer"}
            ),
            {"Authorization": "Bearer a.b.c"},
            [],
        ),
        (
            cred("target", "basicAuth", {"username": "u", "password": "p"}),
            {"Authorization": "Basic dTpw"},
            [],
        ),
        (
            cred("target", "custom", {"headers": {"X-A": "1"}, "queryParams": {"k": "v"}}),
            {"X-A": "1"},
            ["k=v"],
        ),
        (cred("target", "none", {}), {}, []),
    ],
)
def test_target_credential_is_injected_and_caller_credential_removed(target, headers, query):
    sent = caller_headers()
    injection = prepare_upstream(proxy(target), sent, "a=1&Authorization=caller&b")
    assert injection.query.split("&") == ["a=1", "b", *query]
    for name, value in headers.items():
        assert sent.get_all(name) == [value]
    assert "caller" not in [v for _, v in sent.items(multi=True)]
    for hop in ("Connection", "Keep-Alive", "X-Hop"):
        assert hop not in sent
    assert sent["Accept"] == "application/json"
    assert set(injection.secrets) == set(headers.values()) | {
        q.split("=")[1].replace("%26", "&") for q in query
    }


def test_caller_query_credential_named_by_the_credential_is_removed():
    caller = cred("proxy", "apiKey", {"value": "caller"}, {"in": "query", "name": "api_key"})
    injection = prepare_upstream(
        proxy(cred("target", "none", {}), caller=caller), Headers(), "api_key=caller&keep=1"
    )
    assert injection.query == "keep=1"


def test_additional_headers_and_query_params_are_added_but_never_override_the_secret():
    target = cred(
        "target", "bearer", {"token": "T"}, {"header": "Authorization", "prefix": "Bearer"}
    )
    sent = caller_headers()
    injection = prepare_upstream(
        proxy(
            target,
            additional_headers={"X-Team": "payments", "Authorization": "spoof"},
            additional_query_params={"v": "2"},
        ),
        sent,
        "",
    )
    assert sent["X-Team"] == "payments" and sent["Authorization"] == "Bearer T"
    assert injection.query == "v=2"


@pytest.mark.parametrize(
    ("target", "headers", "query"),
    [
        (cred("target", "oauth2", {"clientSecret": "cs"}, {}), {"Authorization": "Bearer MT"}, []),
        (
            cred("target", "oauth2", {}, {"header": "X-Token", "prefix": ""}),
            {"X-Token": "MT"},
            [],
        ),
        (
            cred("target", "customToken", {}, {"header": "Authorization", "prefix": "Token"}),
            {"Authorization": "Token MT"},
            [],
        ),
        (
            cred("target", "customToken", {}, {"injectIn": "query", "queryParam": "access_token"}),
            {},
            ["access_token=MT"],
        ),
    ],
)
def test_a_minted_token_is_injected_and_kept_secret(target, headers, query):
    sent = caller_headers()
    spoof = {"additional_headers": {"Authorization": "spoof", "X-Token": "spoof"}}
    injection = prepare_upstream(proxy(target, **spoof), sent, "a=1", token="MT")
    assert injection.query.split("&") == ["a=1", *query]
    for name, value in headers.items():
        assert sent.get_all(name) == [value]  # the credential wins over additional headers
    assert "MT" in injection.secrets and injection.token == "MT"
    assert {n.lower() for n in headers} <= injection.header_names
    assert {q.split("=")[0] for q in query} <= injection.query_names


@pytest.mark.parametrize("auth_type", ["oauth2", "customToken"])
def test_token_types_are_never_forwarded_without_their_token(auth_type):
    with pytest.raises(ValueError, match="needs a minted token"):
        prepare_upstream(proxy(cred("target", auth_type, {})), caller_headers(), "")
    with pytest.raises(UnsupportedInjection):  # the static path has no value for them
        target_credential_parts(cred("target", auth_type, {}))
