"""Token requests and answers, read without a network: what the gateway sends to a token
endpoint, which answers give a token (and for how long), and which end in which 502.

The same functions run in the gateway; the end-to-end tests (test_oauth_*, test_custom_token)
drive them against a real authorization server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from addons.tokens import custom, oauth2
from addons.tokens.flight import SingleFlight
from addons.tokens.minted import (
    CredentialRejected,
    MintedToken,
    TokenEndpointUnreachable,
)
from addons.upstream import UpstreamResponse

NOW = 1_000_000.0
CRED = "cred_test"


def answer(status: int, body=b"", headers=()) -> UpstreamResponse:
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return UpstreamResponse(status, "", tuple(headers), body, NOW, NOW)


@pytest.mark.parametrize(("lifetime", "refresh_at"), [(2, 1.8), (3600, 3540), (86400, 86340)])
def test_a_token_is_replaced_min_60s_or_10_percent_before_it_expires(lifetime, refresh_at):
    token = MintedToken("t", NOW + lifetime, lifetime)
    assert token.refresh_at == pytest.approx(NOW + refresh_at)


@pytest.mark.parametrize(
    ("method", "expect_header", "expect_body"),
    [
        ("client_secret_basic", "Basic " + base64.b64encode(b"app:s3cret").decode(), set()),
        (None, "Basic " + base64.b64encode(b"app:s3cret").decode(), set()),
        ("client_secret_post", None, {"client_id=app", "client_secret=s3cret"}),
    ],
)
def test_client_authentication_as_configured(method, expect_header, expect_body):
    settings = {
        "tokenUrl": "https://auth.example/token",
        "clientId": "app",
        "scope": "read write",
        "audience": "https://api.example",
        "extraParams": {"resource": "r1"},
        "clientAuthMethod": method,
    }
    request, body = oauth2.token_request(settings, {"clientSecret": "s3cret"})
    headers = dict(request.headers)
    assert request.method == "POST" and request.url == "https://auth.example/token"
    assert headers.get("Authorization") == expect_header
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    items = set(body.decode().split("&"))
    assert {"grant_type=client_credentials", "scope=read+write", "resource=r1"} <= items
    assert "audience=https%3A%2F%2Fapi.example" in items and expect_body <= items


def test_a_refresh_sends_the_refresh_token_and_a_public_client_only_its_id():
    settings = {"tokenUrl": "https://a.example/t", "clientId": "app", "clientAuthMethod": "none"}
    request, body = oauth2.token_request(settings, {}, refresh_token="rt-1")
    assert "Authorization" not in dict(request.headers)
    assert set(body.decode().split("&")) == {
        "grant_type=refresh_token",
        "refresh_token=rt-1",
        "client_id=app",
    }


def test_an_oauth2_answer_gives_the_token_its_lifetime_and_a_rotated_refresh_token():
    read = oauth2.read_answer(
        CRED, answer(200, {"access_token": "at", "expires_in": "120", "refresh_token": "rt2"}), NOW
    )
    assert read.token == MintedToken("at", NOW + 120, 120) and read.refresh_token == "rt2"
    default = oauth2.read_answer(CRED, answer(200, {"access_token": "at"}), NOW)
    assert default.token.lifetime == oauth2.DEFAULT_LIFETIME_S and default.refresh_token is None


@pytest.mark.parametrize(
    "response",
    [
        answer(500, {"error": "server_error"}),
        answer(503),
        answer(302, headers=[(b"Location", b"https://elsewhere.example/")]),
        answer(200, b"<html>not json</html>"),
        answer(200, b"[" * 200 + b"]" * 200),
        answer(200, {"token": "at"}),
        answer(200, {"access_token": ""}),
        answer(200, {"access_token": 12345}),
        answer(200, {"access_token": "at\r\nX-Injected: 1"}),
        answer(200, {"access_token": "two words"}),
        answer(404, b"not here"),
    ],
)
def test_unusable_answers_are_token_endpoint_unreachable(response):
    with pytest.raises(TokenEndpointUnreachable) as caught:
        oauth2.read_answer(CRED, response, NOW)
    assert CRED in caught.value.message and caught.value.status == 502


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (
            answer(401, {"error": "invalid_client", "error_description": "SECRET-xyz"}),
            "invalid_client",
        ),
        (answer(400, {"error": "invalid_grant"}), "invalid_grant"),
        (answer(400, {"error": "unauthorized_client"}), "unauthorized_client"),
        (answer(400, {"error": 'bad"code\nx'}), None),
        (answer(401, b"no"), None),
    ],
)
def test_refusals_are_target_credential_rejected_and_echo_no_description(response, code):
    with pytest.raises(CredentialRejected) as caught:
        oauth2.read_answer(CRED, response, NOW)
    refusal = caught.value
    assert refusal.error_code == code and refusal.code == "TARGET_CREDENTIAL_REJECTED"
    assert (
        CRED in refusal.message and "SECRET" not in refusal.message and "\n" not in refusal.message
    )


CUSTOM = {"tokenUrl": "https://t.example/login", "method": "POST"}
FIELDS = {"fields": {"user": "u1", "pass": "p&1", "quote": 'a"b'}}


@pytest.mark.parametrize(
    ("settings", "body", "content_type", "sent"),
    [
        ({}, {"u": "{{fields.user}}", "p": "{{ fields.pass }}"}, "application/json",
         b'{"u": "u1", "p": "p&1"}'),
        ({"bodyFormat": "form"}, {"u": "{{fields.user}}", "p": "{{fields.pass}}"},
         "application/x-www-form-urlencoded", b"u=u1&p=p%261"),
        ({"bodyFormat": "form"}, "grant=pw&u={{fields.user}}&p={{fields.pass}}",
         "application/x-www-form-urlencoded", b"grant=pw&u=u1&p=p%261"),
        ({}, '{"p": "{{fields.quote}}"}', "application/json", b'{"p": "a\\"b"}'),
    ],
)  # fmt: skip
def test_custom_requests_fill_fields_into_the_body(settings, body, content_type, sent):
    request, encoded = custom.token_request(CRED, {**CUSTOM, **settings}, {**FIELDS, "body": body})
    assert dict(request.headers)["Content-Type"] == content_type and encoded == sent


def test_custom_headers_reference_fields_and_a_get_carries_its_form_in_the_query():
    secret = {**FIELDS, "headers": {"X-Key": "k-{{fields.user}}"}, "body": "a={{fields.user}}"}
    settings = {
        **CUSTOM,
        "method": "GET",
        "bodyFormat": "form",
        "tokenUrl": "https://t.example/l?x=1",
    }
    request, encoded = custom.token_request(CRED, settings, secret)
    assert request.url == "https://t.example/l?x=1&a=u1" and encoded == b""
    assert dict(request.headers)["X-Key"] == "k-u1"


def test_an_unknown_field_is_refused_not_sent_empty():
    with pytest.raises(CredentialRejected, match="unknown field 'nope'"):
        custom.token_request(CRED, CUSTOM, {**FIELDS, "headers": {"X": "{{fields.nope}}"}})


def _jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part(claims)}.c2ln"


@pytest.mark.parametrize(
    ("settings", "response", "lifetime"),
    [
        ({"tokenPath": "data.token", "ttlFrom": "path", "ttlPath": "data.ttl"},
         answer(200, {"data": {"token": "T", "ttl": 2}}), 2),
        ({"tokenPath": "data.token", "ttlFrom": "path", "ttlPath": "data.ttl"},
         answer(200, {"data": {"token": "T", "ttl": "30"}}), 30),
        ({"tokenLocation": "header", "tokenHeader": "X-Token", "ttlSeconds": 60},
         answer(200, b"{}", [(b"x-token", b" T ")]), 60),
        ({}, answer(200, {"access_token": "T"}), custom.DEFAULT_TTL_S),
    ],
)  # fmt: skip
def test_custom_answers_give_the_token_and_its_lifetime(settings, response, lifetime):
    token = custom.read_answer(CRED, settings, response, NOW)
    assert token == MintedToken("T", NOW + lifetime, lifetime)


def test_a_jwt_lifetime_comes_from_its_exp():
    value = _jwt({"exp": int(time.time()) + 100})
    token = custom.read_answer(CRED, {"ttlFrom": "jwtExp"}, answer(200, {"access_token": value}))
    assert 95 < token.lifetime <= 100


DOWN, REFUSED = TokenEndpointUnreachable, CredentialRejected


@pytest.mark.parametrize(
    ("settings", "response", "refusal"),
    [
        ({"tokenPath": "data.token"}, answer(200, {"data": {}}), DOWN),
        ({"ttlFrom": "path", "ttlPath": "ttl"}, answer(200, {"access_token": "T"}), DOWN),
        ({"ttlFrom": "path", "ttlPath": "t"}, answer(200, {"access_token": "T", "t": -5}), DOWN),
        ({"ttlFrom": "jwtExp"}, answer(200, {"access_token": "not-a-jwt"}), DOWN),
        ({"ttlFrom": "jwtExp"}, answer(200, {"access_token": _jwt({"exp": 1})}), DOWN),
        ({"tokenLocation": "header", "tokenHeader": "X-T"}, answer(200, b"{}"), DOWN),
        ({}, answer(502, b"bad gateway"), DOWN),
        ({}, answer(401, {"access_token": "T"}), REFUSED),
        ({}, answer(403, b"forbidden"), REFUSED),
    ],
)  # fmt: skip
def test_unusable_custom_answers_are_refused(settings, response, refusal):
    with pytest.raises(refusal) as caught:
        custom.read_answer(CRED, settings, response, NOW)
    assert CRED in caught.value.message


def test_one_mint_in_flight_whatever_the_waiters_and_a_refusal_held_briefly():
    async def scenario():
        flight, mints = SingleFlight(), []
        release = asyncio.Event()

        async def mint():
            mints.append(1)
            await release.wait()
            return MintedToken(f"t{len(mints)}", time.time() + 60, 60)

        waiters = [asyncio.ensure_future(flight.get("k", mint)) for _ in range(50)]
        await asyncio.sleep(0)
        waiters[0].cancel()  # a caller that went away does not cancel the mint
        release.set()
        tokens = await asyncio.gather(*waiters[1:])
        assert len(mints) == 1 and {t.value for t in tokens} == {"t1"}
        assert (await flight.get("k", mint)).value == "t1"  # cached
        assert (await flight.get("k", mint, rejected="t1")).value == "t2"  # refused: renewed

        async def refused():
            mints.append(1)
            raise CredentialRejected("refused")

        before = len(mints)
        for _ in range(5):
            with pytest.raises(CredentialRejected):
                await flight.get("r", refused)
        assert len(mints) == before + 1  # held: the provider is not asked again at once

        async def unreachable():
            mints.append(1)
            raise TokenEndpointUnreachable("down")

        before = len(mints)
        for _ in range(3):
            with pytest.raises(TokenEndpointUnreachable):
                await flight.get("u", unreachable)
        assert len(mints) == before + 3  # a passing failure is tried again

    asyncio.run(scenario())
