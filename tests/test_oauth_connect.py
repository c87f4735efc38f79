"""Connect for OAuth2 authorization_code credentials, against the tests' real Authlib server.

A real admin (`run_admin.py serve`, allowed to call 127.0.0.1 through
PORTCULLIS_ALLOW_TARGETS), the real OAuth2 server of tests/oauth_server.py,
and a cookie-keeping HTTP client signed in to the web admin. The person's
browser steps are plain HTTP: GET the consent page, POST "allow", follow the
provider's redirect to the admin's callback.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import text, update

from models.credential_grant import OAuthAuthorization, open_refresh_token
from models.crypto import KeyRing, SealedSecret
from models.store import make_engine
from tests.support import (
    TEST_MASTER_KEYS,
    assert_error,
    create,
    new_client,
    run_admin_cli,
    start_admin,
)
from tests.web_support import Browser, new_user

pytest_plugins = ["tests.oauth_support"]  # the `oauth_server` fixture

CALLBACK = "/ui/oauth/callback"
ALLOW_LOCAL = {"PORTCULLIS_ALLOW_TARGETS": "127.0.0.1"}
TARGET = {
    "credentialName": "Provider",
    "credentialType": "target",
    "credentialAuthType": "oauth2",
    "credentialRegion": "us-east-1",
}
INVALID_LINK = "This authorization link is invalid or was already used."


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    """An admin whose outbound calls may reach 127.0.0.1 (only: not 127.0.0.2)."""
    server = start_admin(tmp_path_factory.mktemp("oauth-admin"), **ALLOW_LOCAL)
    yield server
    server.stop()


@pytest.fixture
def person(admin):
    """A user, their API client and their signed-in web session."""
    email, api = new_user(admin)
    browser = Browser(admin.base_url)
    assert browser.sign_in_with_password(email, "correct horse battery staple").status_code == 302
    return api, browser


@pytest.fixture
def creds(person) -> str:
    api, _ = person
    return f"/api/clients/{new_client(api)}/credentials"


def redirect_uri(admin) -> str:
    return admin.base_url + CALLBACK


def oauth_body(oauth, client_id: str, **secret) -> dict:
    return {
        **TARGET,
        "credentialSecret": {
            "grantType": "authorization_code",
            "tokenUrl": oauth.url("/token"),
            "authorizeUrl": oauth.url("/authorize"),
            "clientId": client_id,
            "scope": "read",
            **secret,
        },
    }


def public_credential(admin, oauth, api, creds) -> dict:
    """A public client (PKCE, no secret) registered at the provider, and its credential."""
    client = oauth.register_client(
        "portcullis-public", None, auth_method="none",
        grant_types=["authorization_code", "refresh_token"], redirect_uris=[redirect_uri(admin)],
    )  # fmt: skip
    return create(api, creds, oauth_body(oauth, client.client_id), "credentials")


def authorize(api, creds: str, credential_id: str) -> str:
    started = api.post(f"{creds}/{credential_id}/authorize")
    assert started.status_code == 200, started.text
    assert set(started.json()) == {"authorizeUrl", "expiresAt", "message"}
    return started.json()["authorizeUrl"]


def consent(authorize_url: str, decision: str = "allow") -> str:
    """The person at the provider: the consent page, the decision; the callback's path."""
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    answer = requests.post(
        authorize_url, data={"decision": decision}, timeout=10, allow_redirects=False
    )
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    assert location.path == CALLBACK
    return f"{location.path}?{location.query}"


def grant_row(admin, credential_id: str) -> dict | None:
    engine = make_engine(admin.database_url)
    try:
        with engine.connect() as db:
            row = db.execute(
                text("SELECT * FROM credential_grants WHERE credential_id = :id"),
                {"id": credential_id},
            ).mappings().first()  # fmt: skip
            return dict(row) if row else None
    finally:
        engine.dispose()


def store_sql(admin, statement: str, **params) -> list:
    engine = make_engine(admin.database_url)
    try:
        with engine.begin() as db:
            result = db.execute(text(statement), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def get_credential(api, creds: str, credential_id: str) -> dict:
    answer = api.get(f"{creds}/{credential_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["credentials"][0]


def listed(api, creds: str, include_temporary: bool = False) -> list[str]:
    query = "?includeTemporary=true" if include_temporary else ""
    return [c["credentialId"] for c in api.get(creds + query).json()["credentials"]]


def assert_pending_and_nothing_stored(admin, api, creds, credential_id):
    credential = get_credential(api, creds, credential_id)
    assert credential["credentialTemporary"] is True
    assert credential["credentialConnection"]["status"] == "pending"
    row = grant_row(admin, credential_id)
    assert row["refresh_ciphertext"] is None and row["generation"] == 0
    assert credential_id not in listed(api, creds)


def assert_refused_page(answer, phrase: str):
    assert answer.status_code == 400, answer.text
    assert "text/html" in answer.headers["Content-Type"]
    assert phrase in answer.text


# Connecting


PKCE_VARIANTS = {
    "public-pkce": ("none", None, {}),
    "basic-pkce": ("client_secret_basic", "", {"clientAuthMethod": "client_secret_basic"}),
    "post-no-pkce": (
        "client_secret_post", "", {"clientAuthMethod": "client_secret_post", "usePkce": False}
    ),
}  # fmt: skip


@pytest.mark.parametrize(("method", "secret", "extra"), PKCE_VARIANTS.values(), ids=PKCE_VARIANTS)
def test_connect_stores_the_refresh_token_sealed_and_ends_pending(
    admin, oauth_server, person, creds, method, secret, extra
):
    api, browser = person
    client = oauth_server.register_client(
        f"portcullis-{method}", secret, auth_method=method,
        grant_types=["authorization_code", "refresh_token"], redirect_uris=[redirect_uri(admin)],
    )  # fmt: skip
    if client.client_secret:
        extra = {**extra, "clientSecret": client.client_secret}
    made = create(api, creds, oauth_body(oauth_server, client.client_id, **extra), "credentials")
    cid = made["credentialId"]
    assert made["credentialTemporary"] is True
    assert made["credentialConnection"]["status"] == "pending"
    assert cid not in listed(api, creds) and cid in listed(api, creds, include_temporary=True)

    url = authorize(api, creds, cid)
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"] and query["client_id"] == [client.client_id]
    assert query["redirect_uri"] == [redirect_uri(admin)] and query["scope"] == ["read"]
    assert len(query["state"][0]) >= 32
    if extra.get("usePkce") is False:
        assert "code_challenge" not in query
    else:
        assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43

    done = browser.get(consent(url))
    assert done.status_code == 302, done.text
    client_id = creds.split("/")[3]
    assert urlsplit(done.headers["Location"]).path == f"/ui/c/{client_id}/credentials/{cid}"

    connected = get_credential(api, creds, cid)
    assert connected["credentialTemporary"] is False
    connection = connected["credentialConnection"]
    assert connection["status"] == "connected" and connection["connectedAt"]
    assert connection["lastError"] is None
    assert cid in listed(api, creds)

    exchanges = [
        r for r in oauth_server.stats()["token_log"] if r["grant_type"] == "authorization_code"
    ]
    assert [r["status"] for r in exchanges] == [200]
    refresh = oauth_server.issued_secrets()["refresh_tokens"]
    assert len(refresh) == 1
    row = grant_row(admin, cid)
    assert row["status"] == "connected" and row["generation"] == 1
    sealed = SealedSecret(row["refresh_key_id"], bytes(row["refresh_ciphertext"]))
    assert open_refresh_token(KeyRing.parse(TEST_MASTER_KEYS), cid, sealed) == refresh[0]
    assert refresh[0].encode() not in admin.store_bytes()
    for answer in (
        api.get(creds).text,
        api.get(f"{creds}/{cid}").text,
        browser.get(done.headers["Location"]).text,
    ):
        assert refresh[0] not in answer


def test_the_code_verifier_never_leaves_the_admin(admin, oauth_server, person, creds):
    """The challenge is S256 of a verifier only the admin holds: the provider accepts the
    exchange (so the admin sent the right verifier), yet no answer and no store column shows it."""
    api, browser = person
    made = public_credential(admin, oauth_server, api, creds)
    started = api.post(f"{creds}/{made['credentialId']}/authorize")
    url = started.json()["authorizeUrl"]
    challenge = parse_qs(urlsplit(url).query)["code_challenge"][0]
    assert browser.get(consent(url)).status_code == 302
    log = oauth_server.stats()["token_log"]
    assert [r["status"] for r in log if r["grant_type"] == "authorization_code"] == [200]
    # The authorization row keeps the verifier sealed (and only the state's hash).
    rows = store_sql(
        admin,
        "SELECT state_hash, verifier_ciphertext FROM oauth_authorizations WHERE credential_id = :c",
        c=made["credentialId"],
    )
    ((state_hash, ciphertext),) = rows
    key_ring = KeyRing.parse(TEST_MASTER_KEYS)
    verifier = key_ring.open(SealedSecret("ktest", bytes(ciphertext)), state_hash)["codeVerifier"]
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
    state = parse_qs(urlsplit(url).query)["state"][0]
    assert state_hash == hashlib.sha256(state.encode()).hexdigest()
    assert verifier not in started.text
    assert (
        verifier.encode() not in admin.store_bytes() and state.encode() not in admin.store_bytes()
    )


def test_reconnect_replaces_the_refresh_token(admin, oauth_server, person, creds):
    api, browser = person
    made = public_credential(admin, oauth_server, api, creds)
    cid = made["credentialId"]
    for _ in range(2):
        assert browser.get(consent(authorize(api, creds, cid))).status_code == 302
    first, second = oauth_server.issued_secrets()["refresh_tokens"]
    row = grant_row(admin, cid)
    assert row["generation"] == 2
    sealed = SealedSecret(row["refresh_key_id"], bytes(row["refresh_ciphertext"]))
    assert open_refresh_token(KeyRing.parse(TEST_MASTER_KEYS), cid, sealed) == second != first


# Refusals: each a 400 page, nothing stored


def test_unknown_and_missing_state_are_refused(admin, oauth_server, person, creds):
    api, browser = person
    made = public_credential(admin, oauth_server, api, creds)
    callback = consent(authorize(api, creds, made["credentialId"]))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    for query in (
        f"state=forged&code={code}",
        f"code={code}",
        "state=&code=x",
        "state=" + "a" * 600,
    ):
        assert_refused_page(browser.get(f"{CALLBACK}?{query}"), INVALID_LINK)
    assert_pending_and_nothing_stored(admin, api, creds, made["credentialId"])
    assert [
        r for r in oauth_server.stats()["token_log"] if r["grant_type"] == "authorization_code"
    ] == []


def test_a_replayed_callback_is_refused(admin, oauth_server, person, creds):
    api, browser = person
    made = public_credential(admin, oauth_server, api, creds)
    callback = consent(authorize(api, creds, made["credentialId"]))
    assert browser.get(callback).status_code == 302
    generation = grant_row(admin, made["credentialId"])["generation"]
    assert_refused_page(browser.get(callback), INVALID_LINK)
    assert grant_row(admin, made["credentialId"])["generation"] == generation
    exchanges = [
        r for r in oauth_server.stats()["token_log"] if r["grant_type"] == "authorization_code"
    ]
    assert len(exchanges) == 1  # the replay never reached the provider


def test_an_expired_authorization_is_refused(admin, oauth_server, person, creds):
    api, browser = person
    made = public_credential(admin, oauth_server, api, creds)
    callback = consent(authorize(api, creds, made["credentialId"]))
    past = datetime.now(UTC) - timedelta(seconds=1)
    engine = make_engine(admin.database_url)
    try:
        with engine.begin() as db:
            db.execute(
                update(OAuthAuthorization)
                .where(OAuthAuthorization.credential_id == made["credentialId"])
                .values(expires_at=past)
            )
    finally:
        engine.dispose()
    assert_refused_page(browser.get(callback), INVALID_LINK)
    assert_pending_and_nothing_stored(admin, api, creds, made["credentialId"])


def test_the_provider_denying_access_is_shown_and_stores_nothing(
    admin, oauth_server, person, creds
):
    api, browser = person
    made = public_credential(admin, oauth_server, api, creds)
    callback = consent(authorize(api, creds, made["credentialId"]), decision="deny")
    assert "error=access_denied" in callback
    assert_refused_page(browser.get(callback), "access_denied")
    assert_pending_and_nothing_stored(admin, api, creds, made["credentialId"])
    assert_refused_page(browser.get(callback), INVALID_LINK)  # and the link is used up


@pytest.mark.parametrize("fault", ["bad-code", "revoked-secret"])
def test_a_refused_code_exchange_is_shown_and_stores_nothing(
    admin, oauth_server, person, creds, fault
):
    api, browser = person
    client = oauth_server.register_client(
        "portcullis-confidential", "", auth_method="client_secret_basic",
        grant_types=["authorization_code", "refresh_token"], redirect_uris=[redirect_uri(admin)],
    )  # fmt: skip
    body = oauth_body(oauth_server, client.client_id, clientSecret=client.client_secret)
    made = create(api, creds, body, "credentials")
    callback = consent(authorize(api, creds, made["credentialId"]))
    if fault == "bad-code":
        code = parse_qs(urlsplit(callback).query)["code"][0]
        callback = callback.replace(f"code={code}", "code=not-the-code")
        expected = "invalid_grant"
    else:
        oauth_server.revoke_client_secret(client.client_id)
        expected = "invalid_client"
    answer = browser.get(callback)
    assert_refused_page(answer, expected)
    assert client.client_secret not in answer.text
    assert_pending_and_nothing_stored(admin, api, creds, made["credentialId"])


def test_the_code_exchange_obeys_the_ssrf_policy(admin, oauth_server, person, creds):
    """A token URL on an address the operator did not allow (127.0.0.2; only 127.0.0.1 is)
    is never called: the exchange is refused before connecting."""
    api, browser = person
    client = oauth_server.register_client(
        "portcullis-elsewhere", None, auth_method="none",
        grant_types=["authorization_code"], redirect_uris=[redirect_uri(admin)],
    )  # fmt: skip
    body = oauth_body(oauth_server, client.client_id)
    body["credentialSecret"]["tokenUrl"] = oauth_server.url("/token").replace(
        "127.0.0.1", "127.0.0.2"
    )
    made = create(api, creds, body, "credentials")
    answer = browser.get(consent(authorize(api, creds, made["credentialId"])))
    assert_refused_page(answer, "PORTCULLIS_ALLOW_TARGETS")
    assert "127.0.0.2" in answer.text
    assert_pending_and_nothing_stored(admin, api, creds, made["credentialId"])
    assert [
        r for r in oauth_server.stats()["token_log"] if r["grant_type"] == "authorization_code"
    ] == []


def test_the_callback_is_bound_to_the_person_who_started_it(admin, oauth_server, person, creds):
    """Another admin of the same client, or no session at all, cannot finish someone else's
    Connect; the person who started it still can afterwards."""
    api, browser = person
    made = public_credential(admin, oauth_server, api, creds)
    callback = consent(authorize(api, creds, made["credentialId"]))
    other_email, _ = new_user(admin)
    client_id = creds.split("/")[3]
    added = api.post(
        f"/api/clients/{client_id}/members", json={"email": other_email, "roles": ["admin"]}
    )
    assert added.status_code == 201, added.text
    other = Browser(admin.base_url)
    assert (
        other.sign_in_with_password(other_email, "correct horse battery staple").status_code == 302
    )
    assert_refused_page(other.get(callback), "started by another user")

    anonymous = Browser(admin.base_url).get(callback)
    assert anonymous.status_code == 302
    assert urlsplit(anonymous.headers["Location"]).path == "/ui/login"
    assert_pending_and_nothing_stored(admin, api, creds, made["credentialId"])

    assert browser.get(callback).status_code == 302
    assert get_credential(api, creds, made["credentialId"])["credentialConnection"]["status"] == (
        "connected"
    )


# The authorize endpoint


def test_authorize_is_only_for_authorization_code_credentials(admin, oauth_server, person, creds):
    api, _ = person
    client_credentials = create(
        api,
        creds,
        {
            **oauth_body(oauth_server, "svc"),
            "credentialSecret": {
                "tokenUrl": oauth_server.url("/token"), "clientId": "svc", "clientSecret": "s",
            },
        },
        "credentials",
    )  # fmt: skip
    api_key = create(
        api,
        creds,
        {
            "credentialName": "Key",
            "credentialType": "target",
            "credentialAuthType": "apiKey",
            "credentialRegion": "us-east-1",
            "credentialSecret": {"value": "k-123"},
        },
        "credentials",
    )
    for made in (client_credentials, api_key):
        answer = api.post(f"{creds}/{made['credentialId']}/authorize")
        assert_error(answer, 400, "NOT_AUTHORIZATION_CODE")
        assert "credentialConnection" not in made


def test_authorize_needs_the_admin_role_and_hides_other_tenants(admin, oauth_server, person, creds):
    api, _ = person
    made = public_credential(admin, oauth_server, api, creds)
    client_id = creds.split("/")[3]
    viewer_email, viewer_api = new_user(admin)
    added = api.post(
        f"/api/clients/{client_id}/members", json={"email": viewer_email, "roles": ["user"]}
    )
    assert added.status_code == 201, added.text
    assert_error(viewer_api.post(f"{creds}/{made['credentialId']}/authorize"), 403, "FORBIDDEN")
    _, stranger_api = new_user(admin)
    assert_error(stranger_api.post(f"{creds}/{made['credentialId']}/authorize"), 404, "NOT_FOUND")
    assert store_sql(
        admin,
        "SELECT count(*) FROM oauth_authorizations WHERE credential_id = :c",
        c=made["credentialId"],
    ) == [(0,)]


# Lifecycle


def test_deleting_the_credential_deletes_its_grant_and_authorizations(
    admin, oauth_server, person, creds
):
    api, browser = person
    made = public_credential(admin, oauth_server, api, creds)
    cid = made["credentialId"]
    assert browser.get(consent(authorize(api, creds, cid))).status_code == 302
    authorize(api, creds, cid)  # and one Connect left open
    assert api.delete(f"{creds}/{cid}").status_code == 200
    for table in ("credential_grants", "oauth_authorizations"):
        count = store_sql(admin, f"SELECT count(*) FROM {table} WHERE credential_id = :c", c=cid)
        assert count == [(0,)], table


def test_a_refresh_token_credential_starts_connected(admin, oauth_server, person, creds):
    api, _ = person
    body = {
        **oauth_body(oauth_server, "svc"),
        "credentialSecret": {
            "grantType": "refresh_token",
            "tokenUrl": oauth_server.url("/token"),
            "clientId": "svc",
            "refreshToken": "rt-given-by-the-user-5d1e",
        },
    }
    made = create(api, creds, body, "credentials")
    assert made["credentialTemporary"] is False
    assert made["credentialConnection"]["status"] == "connected"
    row = grant_row(admin, made["credentialId"])
    assert row["generation"] == 1
    sealed = SealedSecret(row["refresh_key_id"], bytes(row["refresh_ciphertext"]))
    opened = open_refresh_token(KeyRing.parse(TEST_MASTER_KEYS), made["credentialId"], sealed)
    assert opened == "rt-given-by-the-user-5d1e"
    assert b"rt-given-by-the-user-5d1e" not in admin.store_bytes()
    assert "rt-given-by-the-user-5d1e" not in api.get(creds).text


def test_rotate_secrets_reseals_refresh_tokens(tmp_path):
    server = start_admin(tmp_path / "rotating")
    try:
        _, api = new_user(server)
        creds = f"/api/clients/{new_client(api)}/credentials"
        body = {
            **TARGET,
            "credentialSecret": {
                "grantType": "refresh_token",
                "tokenUrl": "http://127.0.0.1:9/token",
                "clientId": "svc",
                "refreshToken": "rt-rotate-me-77",
            },
        }
        made = create(api, creds, body, "credentials")
    finally:
        server.stop()
    new_entry = "knew:" + base64.b64encode(bytes(range(32, 64))).decode()
    result = run_admin_cli(
        server, "rotate-secrets", PORTCULLIS_MASTER_KEYS=f"{new_entry},{TEST_MASTER_KEYS}"
    )
    assert result.returncode == 0, result.stderr
    assert "Re-sealed 2 credential secret(s)." in result.stdout  # the secret and the grant
    row = grant_row(server, made["credentialId"])
    assert row["refresh_key_id"] == "knew" and row["generation"] == 1
    sealed = SealedSecret("knew", bytes(row["refresh_ciphertext"]))
    opened = open_refresh_token(KeyRing.parse(new_entry), made["credentialId"], sealed)
    assert opened == "rt-rotate-me-77"


def test_the_redirect_uri_follows_the_public_url(tmp_path):
    server = start_admin(
        tmp_path / "public", PORTCULLIS_PUBLIC_URL="https://admin.example.test/", **ALLOW_LOCAL
    )
    try:
        _, api = new_user(server)
        creds = f"/api/clients/{new_client(api)}/credentials"
        secret = {
            "grantType": "authorization_code",
            "tokenUrl": "https://provider.example.test/token",
            "authorizeUrl": "https://provider.example.test/authorize?tenant=t1",
            "clientId": "app",
        }
        made = create(api, creds, {**TARGET, "credentialSecret": secret}, "credentials")
        url = urlsplit(authorize(api, creds, made["credentialId"]))
    finally:
        server.stop()
    query = parse_qs(url.query)
    assert query["redirect_uri"] == ["https://admin.example.test/ui/oauth/callback"]
    assert (url.netloc, url.path, query["tenant"]) == (
        "provider.example.test",
        "/authorize",
        ["t1"],
    )


def test_an_allow_list_naming_nothing_allowable_stops_the_admin(tmp_path):
    refusal = r"PORTCULLIS_ALLOW_TARGETS: 224\.0\.0\.0/4 is multicast"
    with pytest.raises(RuntimeError, match=refusal):
        start_admin(tmp_path / "bad-allow", PORTCULLIS_ALLOW_TARGETS="224.0.0.0/4")
