"""A jwtVerify credential's `jwksUrl` is fetched through the gateway's one outbound path.

So it gets the SSRF guard, no redirects, a size cap and a deadline; and a
failure answers 401 `jwks-unavailable` with one fixed message, whatever the
server behind the URL said or whoever it is (no status, body or address
comes back: the 401 is no oracle for internal servers).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from yarl import URL

from tests.internal_server import (
    INTERNAL_MARKER,
    LOOPBACK_FORMS,
    OTHER_FORMS,
    Canned,
    InternalServer,
)
from tests.proxy_support import Setup, start_proxy, wait_until_served
from tests.support import error_fields

KID = "k1"
JWKS_MESSAGE = "The JWKS could not be fetched"


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_document(signing_key) -> bytes:
    public = jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key(), as_dict=True)
    return json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()


@pytest.fixture(scope="module")
def bearer(signing_key) -> dict:
    claims = {"sub": "caller", "exp": datetime.now(UTC) + timedelta(hours=2)}
    token = jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": KID})
    return {"Authorization": f"Bearer {token}"}


def try_jwks_proxy(api, upstream, jwks_url: str):
    """The Setup, or None when the admin refuses the URL itself (400 naming jwksUrl)."""
    client = api.post("/api/clients", json={"clientName": "jwks"}).json()["clients"][0]
    body = {
        "credentialName": "caller",
        "credentialType": "proxy",
        "credentialRegion": "us-east-1",
        "credentialAuthType": "jwtVerify",
        "credentialSecret": {"jwksUrl": jwks_url},
    }
    refused = api.post(f"/api/clients/{client['clientId']}/credentials", json=body)
    if refused.status_code == 400:
        assert "credentialSecret.jwksUrl" in error_fields(refused), refused.text
        return None
    assert refused.status_code == 201, refused.text
    caller = {"credentialAuthType": "jwtVerify", "credentialSecret": {"jwksUrl": jwks_url}}
    return Setup(api, upstream, caller=caller)


def unavailable(gateway, made: Setup, headers: dict) -> requests.Response:
    """The caller's answer once the proxy is served: 401 jwks-unavailable, nothing echoed."""
    response = wait_until_served(gateway, f"/api/{made.id}/x", headers)
    assert response.status_code == 401, response.text
    assert response.json()["message"] == JWKS_MESSAGE
    assert response.json()["error"]["details"] == {"reason": "jwks-unavailable"}
    return response


def assert_no_echo(response: requests.Response, *leaks: str) -> None:
    shown = response.text + " ".join(
        value for name, value in response.headers.items() if name != "portcullis-request-id"
    )
    for leak in (INTERNAL_MARKER, *leaks):
        assert leak not in shown, (leak, shown)


@pytest.fixture(scope="module")
def guarded(admin_server, tmp_path_factory):
    """A data plane with the SSRF guard as shipped: no loopback allowance."""
    proxy = start_proxy(admin_server, tmp_path_factory.mktemp("jwks-guarded"), allow_loopback=False)
    yield proxy
    proxy.stop()


def test_every_internal_address_form_is_refused_and_never_contacted(api, upstream, guarded, bearer):
    with InternalServer("127.0.0.1") as internal:
        port = internal.port
        urls = [f"http://{host}:{port}/jwks.json" for host in LOOPBACK_FORMS]
        urls += [f"http://{host}/jwks.json" for host in OTHER_FORMS]
        stopped_by_admin, refused = [], []
        # Every proxy made first, then each checked: the data plane picks them up in one reload
        # instead of one wait per form.
        for url, made in [(url, try_jwks_proxy(api, upstream, url)) for url in urls]:
            if made is None:
                stopped_by_admin.append(url)
                continue
            response = unavailable(guarded, made, bearer)
            assert_no_echo(response, str(port), "403", "Forbidden", "127.0.0.1", "::1")
            refused.append(url)
        assert internal.hits == [], "the guard let a fetch reach the internal server"
    log = guarded.log_text()
    for url in refused:
        assert f"JWKS fetch failed (refused): {URL(url)}" in log, url
    assert INTERNAL_MARKER not in log
    assert len(refused) > len(stopped_by_admin), (refused, stopped_by_admin)


@pytest.fixture(scope="module")
def fetching(admin_server, tmp_path_factory):
    """A data plane that allows exactly 127.0.0.1 (the tests' servers), with a short deadline."""
    proxy = start_proxy(
        admin_server,
        tmp_path_factory.mktemp("jwks-fetching"),
        "--set",
        "portcullis_jwks_timeout_ms=500",
    )
    yield proxy
    proxy.stop()


def test_a_jwks_served_from_an_allowed_address_authenticates(
    api, upstream, fetching, bearer, jwks_document
):
    with InternalServer("127.0.0.1") as idp:
        idp.answers["/jwks.json"] = Canned(200, jwks_document)
        made = try_jwks_proxy(api, upstream, f"{idp.base_url}/jwks.json")
        response = wait_until_served(fetching, f"/api/{made.id}/x", bearer)
        assert response.status_code == 200, response.text
        assert idp.hits == ["/jwks.json"]


def test_a_redirect_is_never_followed(api, upstream, fetching, bearer, jwks_document):
    """Into a refused address (127.0.0.2 is not allowed) or an allowed one: a 3xx is a failure."""
    with InternalServer("127.0.0.2") as internal, InternalServer("127.0.0.1") as idp:
        internal.answers["/jwks.json"] = Canned(200, jwks_document)
        idp.answers["/jwks.json"] = Canned(200, jwks_document)
        for status in (301, 302, 303, 307, 308):
            for n, location in enumerate((internal.base_url, idp.base_url)):
                idp.answers[f"/moved-{status}-{n}"] = Canned(
                    status, INTERNAL_MARKER.encode(), (("Location", f"{location}/jwks.json"),)
                )
                made = try_jwks_proxy(api, upstream, f"{idp.base_url}/moved-{status}-{n}")
                response = unavailable(fetching, made, bearer)
                assert_no_echo(response, str(status), "127.0.0.2", str(internal.port))
        assert internal.hits == []
        assert "/jwks.json" not in idp.hits, "the allowed redirect target was not fetched either"


def big_jwks(size: int) -> bytes:
    return json.dumps({"keys": [], "padding": "x" * size}).encode()


BAD_DOCUMENTS = {
    "error-status": Canned(),  # 403 with a body: the oracle of the report
    "server-error": Canned(500, f"Internal error {INTERNAL_MARKER}".encode()),
    "too-large": Canned(200, big_jwks(300 * 1024)),
    "too-large-chunked": Canned(200, big_jwks(300 * 1024), chunked=True),
    "slow": Canned(200, b'{"keys": []}', delay_s=2),
    "not-json": Canned(200, f"<html>{INTERNAL_MARKER}</html>".encode()),
    "deeply-nested": Canned(200, b"[" * 10000 + b"]" * 10000),
    "deeply-nested-keys": Canned(200, b'{"keys": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    "not-a-key-set": Canned(200, json.dumps({"keys": INTERNAL_MARKER}).encode()),
    "unusable-keys": Canned(200, json.dumps({"keys": [{"kty": INTERNAL_MARKER}]}).encode()),
    "gzip": Canned(
        200,
        gzip.compress(b'{"keys": []}'),
        (("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
    ),
}


@pytest.mark.parametrize("case", BAD_DOCUMENTS)
def test_an_unusable_jwks_answers_401_without_echo(api, upstream, fetching, bearer, case):
    with InternalServer("127.0.0.1") as idp:
        idp.answers[f"/{case}"] = BAD_DOCUMENTS[case]
        made = try_jwks_proxy(api, upstream, f"{idp.base_url}/{case}?token=SECRET-IN-URL")
        response = unavailable(fetching, made, bearer)
        assert_no_echo(response, str(idp.port), "403", "500", "Forbidden", "SECRET-IN-URL")
        assert idp.hits, "the document was fetched"
    log = fetching.log_text()
    assert INTERNAL_MARKER not in log and "SECRET-IN-URL" not in log
