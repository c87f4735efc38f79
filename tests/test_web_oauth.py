"""OAuth2 and customToken target credentials in the web admin, in headless Chromium.

A real admin over the real store (SQLite or PostgreSQL), a real data plane
(`run_proxy.py`) and the tests' real Authlib authorization server on 127.0.0.1
(tests/oauth_server.py) as the provider and the target: credentials are made
through the form, connected with Connect and the provider's consent page, and
used through the gateway. Bad input shows the Core API's own message next to the
field it names. Nothing is mocked.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from admin.web.plain_errors import plain
from tests.oauth_support import (  # noqa: F401  (the oauth_server fixtures)
    CUSTOM_PASSWORD,
    CUSTOM_USERNAME,
    oauth_server,
    oauth_server_process,
)
from tests.proxy_support import CALLER_KEY, call, start_proxy
from tests.support import (
    REGION,
    Api,
    add_member,
    create,
    error_fields,
    new_client,
    start_admin,
)
from tests.test_web_meters import field_of
from tests.token_support import AUTH, latest_token, serve, wait_expired, wait_until
from tests.web_support import new_user, sign_in


@pytest.fixture
def owner_api(admin_server, owner) -> Api:
    return Api(admin_server.base_url, owner.token)


@pytest.fixture
def client(owner_api) -> str:
    return new_client(owner_api, "Tokens")


def new_form(page: Page, admin_server, owner, client: str) -> None:
    sign_in(page, admin_server.base_url, owner.token)
    page.goto(f"{admin_server.base_url}/ui/c/{client}/credentials/new")


def fill(page: Page, typed: dict[str, str]) -> None:
    """Type into inputs and pick options of selects, by their labels."""
    for label, value in typed.items():
        box = page.get_by_label(label, exact=True)
        tag = box.evaluate("e => e.tagName + (e.type ? ':' + e.type : '')")
        if tag.startswith("SELECT"):
            box.select_option(label=value)
        elif tag == "INPUT:checkbox":
            box.set_checked(value == "yes")
        else:
            box.fill(value)


def credentials_of(api: Api, client: str, temporary: bool = True) -> list[dict]:
    query = "?includeTemporary=true" if temporary else ""
    return api.get(f"/api/clients/{client}/credentials{query}").json()["credentials"]


# --- which fields show -----------------------------------------------------------------------

OAUTH2_ALWAYS = (
    "Grant type (OAuth2)",
    "Token URL (OAuth2)",
    "Client ID (OAuth2)",
    "Client secret (OAuth2)",
    "Client authentication (OAuth2)",
    "Scopes (OAuth2)",
    "Audience (OAuth2)",
    "Extra token parameters (OAuth2)",
    "Header (OAuth2)",
    "Prefix (OAuth2)",
)
TOKEN_REQUEST_ALWAYS = (
    "Token URL (token request)",
    "Method (token request)",
    "Fields (token request)",
    "Request headers (token request)",
    "Body (token request)",
    "Body format (token request)",
    "Token is in (token request)",
    "Lifetime from (token request)",
    "Send the token in (token request)",
)


def expect_shown(page: Page, labels, shown: bool = True) -> None:
    for label in labels:
        box = page.get_by_label(label, exact=True)
        if shown:
            expect(box).to_be_visible()
            help_text = field_of(page, label).locator("small")
            expect(help_text).to_have_count(1)  # what it is, with an example
            expect(help_text).not_to_have_text("")
        else:
            expect(box).to_be_hidden()


def test_the_form_shows_the_fields_of_the_chosen_type_and_grant_each_with_help(
    page: Page, admin_server, owner, client
):
    new_form(page, admin_server, owner, client)
    expect(page.get_by_label("Key value (API key)")).to_be_visible()  # apiKey first
    expect_shown(page, OAUTH2_ALWAYS + TOKEN_REQUEST_ALWAYS, shown=False)

    fill(page, {"Type": "OAuth2 (target credentials)"})
    expect_shown(page, OAUTH2_ALWAYS)
    expect(page.get_by_label("Key value (API key)")).to_be_hidden()
    expect_shown(page, TOKEN_REQUEST_ALWAYS, shown=False)
    # client_credentials: no authorize URL, PKCE or refresh token.
    grant_only = ("Authorize URL (OAuth2)", "Use PKCE (S256) (OAuth2)", "Refresh token (OAuth2)")
    expect_shown(page, grant_only, shown=False)
    fill(page, {"Grant type (OAuth2)": AUTH_CODE["Grant type (OAuth2)"]})
    expect_shown(page, ("Authorize URL (OAuth2)", "Use PKCE (S256) (OAuth2)"))
    expect(page.get_by_label("Use PKCE (S256) (OAuth2)")).to_be_checked()  # on by default
    expect_shown(page, ("Refresh token (OAuth2)",), shown=False)
    fill(page, {"Grant type (OAuth2)": "refresh_token (a refresh token you already have)"})
    expect_shown(page, ("Refresh token (OAuth2)",))
    expect_shown(page, ("Authorize URL (OAuth2)", "Use PKCE (S256) (OAuth2)"), shown=False)

    fill(page, {"Type": "Token from a token request (target credentials)"})
    expect_shown(page, TOKEN_REQUEST_ALWAYS)
    expect_shown(page, OAUTH2_ALWAYS, shown=False)
    # The token's place, its lifetime and its injection each show their own fields.
    expect_shown(page, ("Token JSON path (token request)",))
    expect_shown(page, ("Token header (token request)",), shown=False)
    fill(page, {"Token is in (token request)": "a header of the answer"})
    expect_shown(page, ("Token header (token request)",))
    expect_shown(page, ("Token JSON path (token request)",), shown=False)
    expect_shown(page, ("Lifetime in seconds (token request)",))
    expect_shown(page, ("Lifetime JSON path (token request)",), shown=False)
    fill(page, {"Lifetime from (token request)": "a JSON path in the answer (seconds)"})
    expect_shown(page, ("Lifetime JSON path (token request)",))
    expect_shown(page, ("Lifetime in seconds (token request)",), shown=False)
    fill(page, {"Lifetime from (token request)": "the token's exp (a JWT)"})
    expect_shown(
        page,
        ("Lifetime JSON path (token request)", "Lifetime in seconds (token request)"),
        shown=False,
    )
    expect_shown(page, ("Header (token request)", "Prefix (token request)"))
    expect_shown(page, ("Query parameter (token request)",), shown=False)
    fill(page, {"Send the token in (token request)": "a query parameter"})
    expect_shown(page, ("Query parameter (token request)",))
    expect_shown(page, ("Header (token request)", "Prefix (token request)"), shown=False)


def test_without_javascript_every_field_shows_with_its_help(
    browser: Browser, admin_server, owner, client
):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        new_form(page, admin_server, owner, client)
        expect_shown(page, OAUTH2_ALWAYS + TOKEN_REQUEST_ALWAYS)
        expect_shown(page, ("Authorize URL (OAuth2)", "Lifetime JSON path (token request)"))
    finally:
        context.close()


# --- the Core API's messages by the field ----------------------------------------------------

TOKEN_URL = "http://127.0.0.1:9/token"
OAUTH2 = {"Type": "OAuth2 (target credentials)"}
AUTH_CODE = {
    **OAUTH2,
    "Grant type (OAuth2)": "authorization_code (Connect: a person consents at the provider)",
}
TOKEN_REQUEST = {"Type": "Token from a token request (target credentials)"}

BAD_CREDENTIALS = [
    # (what the user types, the field that shows the message, the API's credentialSecret)
    (
        {**AUTH_CODE, "Token URL (OAuth2)": TOKEN_URL, "Client ID (OAuth2)": "app"},
        "Authorize URL (OAuth2)",
        {"grantType": "authorization_code", "tokenUrl": TOKEN_URL, "clientId": "app"},
    ),
    (
        {**OAUTH2, "Token URL (OAuth2)": "not a url", "Client ID (OAuth2)": "app",
         "Client secret (OAuth2)": "s"},
        "Token URL (OAuth2)",
        {"tokenUrl": "not a url", "clientId": "app", "clientSecret": "s"},
    ),
    (
        {**OAUTH2, "Token URL (OAuth2)": TOKEN_URL, "Client ID (OAuth2)": "app"},
        "Client secret (OAuth2)",
        {"tokenUrl": TOKEN_URL, "clientId": "app"},
    ),
    (
        {**OAUTH2, "Token URL (OAuth2)": TOKEN_URL, "Client ID (OAuth2)": "app",
         "Client secret (OAuth2)": "s", "Header (OAuth2)": "Bad Header"},
        "Header (OAuth2)",
        {"tokenUrl": TOKEN_URL, "clientId": "app", "clientSecret": "s", "header": "Bad Header"},
    ),
    (
        {**OAUTH2, "Token URL (OAuth2)": TOKEN_URL, "Client ID (OAuth2)": "app",
         "Client secret (OAuth2)": "s", "Extra token parameters (OAuth2)": "grant_type=x"},
        "Extra token parameters (OAuth2)",
        {"tokenUrl": TOKEN_URL, "clientId": "app", "clientSecret": "s",
         "extraParams": {"grant_type": "x"}},
    ),
    (
        {**TOKEN_REQUEST, "Token URL (token request)": TOKEN_URL,
         "Request headers (token request)": "X-Key: {{fields.key}}"},
        "Request headers (token request)",
        {"tokenUrl": TOKEN_URL, "headers": {"X-Key": "{{fields.key}}"}},
    ),
    (
        {**TOKEN_REQUEST, "Token URL (token request)": TOKEN_URL,
         "Fields (token request)": "user=alice",
         "Body (token request)": '{"username": "{{fields.user}}", "password": "{{fields.pw}}"}'},
        "Body (token request)",
        {"tokenUrl": TOKEN_URL, "fields": {"user": "alice"},
         "body": {"username": "{{fields.user}}", "password": "{{fields.pw}}"}},
    ),
    (
        {**TOKEN_REQUEST, "Token URL (token request)": TOKEN_URL,
         "Token JSON path (token request)": "data..token"},
        "Token JSON path (token request)",
        {"tokenUrl": TOKEN_URL, "tokenPath": "data..token"},
    ),
    (
        {**TOKEN_REQUEST, "Token URL (token request)": TOKEN_URL,
         "Send the token in (token request)": "a query parameter"},
        "Query parameter (token request)",
        {"tokenUrl": TOKEN_URL, "injectIn": "query"},
    ),
    (
        {**TOKEN_REQUEST, "Token URL (token request)": TOKEN_URL,
         "Lifetime in seconds (token request)": "0"},
        "Lifetime in seconds (token request)",
        {"tokenUrl": TOKEN_URL, "ttlSeconds": 0},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("typed", "label", "secret"), BAD_CREDENTIALS)
def test_bad_input_shows_the_apis_message_by_the_field(
    page: Page, admin_server, owner, owner_api, client, typed, label, secret
):
    auth_type = "oauth2" if typed["Type"].startswith("OAuth2") else "customToken"
    refused = owner_api.post(
        f"/api/clients/{client}/credentials",
        json={"credentialName": "Bad", "credentialType": "target", "credentialRegion": REGION,
              "credentialAuthType": auth_type,
              "credentialSecret": secret},
    )  # fmt: skip
    assert refused.status_code == 400, refused.text
    # The page words the API's message plainly (admin/web/plain_errors.py), by the field.
    messages = [plain(name, m) for name, ms in error_fields(refused).items() for m in ms]
    assert messages, refused.text

    new_form(page, admin_server, owner, client)
    page.get_by_label("Name", exact=True).fill("Bad")
    fill(page, {"Used as": "target credential (injected toward the API)", **typed})
    page.get_by_role("button", name="Create credential").click()
    errors = field_of(page, label).get_by_role("alert")
    for message in messages:
        expect(errors.filter(has_text=message)).to_have_count(1)
    expect(page.get_by_label(label, exact=True)).to_be_visible()  # shown: its type is chosen
    expect(page.get_by_label("Name", exact=True)).to_have_value("Bad")  # the form stays
    assert credentials_of(owner_api, client) == []


@pytest.mark.parametrize(
    ("label", "text", "message"),
    [
        ("Extra token parameters (OAuth2)", "resource=x\nno sign", "Line 2 is not 'name=value'."),
        ("Body (token request)", '{"username": ', "Not valid JSON"),
        ("Request headers (token request)", "X-A: 1\nX-B 2", "Line 2 is not 'Name: value'."),
    ],
)  # fmt: skip
def test_what_the_form_cannot_read_is_named_at_the_field_and_nothing_is_sent(
    page: Page, admin_server, owner, owner_api, client, label, text, message
):
    new_form(page, admin_server, owner, client)
    page.get_by_label("Name", exact=True).fill("Unread")
    kind = OAUTH2 if "OAuth2" in label else TOKEN_REQUEST
    fill(page, {"Used as": "target credential (injected toward the API)", **kind, label: text})
    page.get_by_role("button", name="Create credential").click()
    expect(field_of(page, label).get_by_role("alert")).to_contain_text(message)
    assert credentials_of(owner_api, client) == []


# --- made in the form, used through the gateway ----------------------------------------------


def bind_proxy(api: Api, client: str, target_credential_id: str, base_url: str) -> str:
    """A proxy of `client` toward `base_url` injecting `target_credential_id`; its id."""
    base = f"/api/clients/{client}/credentials"
    caller = create(
        api,
        base,
        {"credentialName": "callers", "credentialType": "proxy", "credentialAuthType": "apiKey",
         "credentialRegion": REGION, "credentialSecret": {"key": "X-API-Key", "value": CALLER_KEY}},
        "credentials",
    )  # fmt: skip
    target = create(
        api,
        f"/api/clients/{client}/targets",
        {"targetName": "provider", "targetBaseURL": base_url, "targetRegion": REGION},
        "targets",
    )
    proxy = create(
        api,
        f"/api/clients/{client}/proxies",
        {"proxyName": "provider", "proxyRegion": REGION,
         "proxyProxyCredentialId": caller["credentialId"],
         "proxyTargetId": target["targetId"], "proxyTargetCredentialId": target_credential_id},
        "proxies",
    )  # fmt: skip
    return proxy["proxyId"]


def made(api: Api, client: str, name: str) -> dict:
    return next(c for c in credentials_of(api, client) if c["credentialName"] == name)


def test_a_client_credentials_credential_made_in_the_form_mints_tokens_for_the_target(
    page: Page,
    admin_server,
    owner,
    owner_api,
    client,
    gateway,
    oauth_server,  # noqa: F811
):
    registered = oauth_server.register_client(
        "svc", grant_types=["client_credentials"], auth_method="client_secret_post", scope="read"
    )
    new_form(page, admin_server, owner, client)
    page.get_by_label("Name", exact=True).fill("Provider")
    fill(
        page,
        {
            "Used as": "target credential (injected toward the API)",
            **OAUTH2,
            "Token URL (OAuth2)": oauth_server.url("/token"),
            "Client ID (OAuth2)": registered.client_id,
            "Client secret (OAuth2)": registered.client_secret,
            "Client authentication (OAuth2)": "client_secret_post (in the form body)",
            "Scopes (OAuth2)": "read",
            "Audience (OAuth2)": "https://orders.example",
            "Extra token parameters (OAuth2)": "resource=orders",
        },
    )
    page.get_by_role("button", name="Create credential").click()
    expect(page.get_by_text("Credential Provider created.")).to_be_visible()
    assert registered.client_secret not in page.content()
    credential = made(owner_api, client, "Provider")
    assert credential["credentialTemporary"] is False  # listed without the toggle
    expected = {
        "grantType": "client_credentials",
        "tokenUrl": oauth_server.url("/token"),
        "clientId": "svc",
        "clientAuthMethod": "client_secret_post",
        "scope": "read",
        "audience": "https://orders.example",
        "extraParams": {"resource": "orders"},
        "header": "Authorization",
        "prefix": "Bearer",
    }
    settings = credential["credentialSettings"]
    assert {name: settings.get(name) for name in expected} == expected

    proxy_id = bind_proxy(
        owner_api, client, credential["credentialId"], oauth_server.url("/resource")
    )
    serve(gateway, SimpleNamespace(id=proxy_id))
    answer = call(gateway, "GET", f"/api/{proxy_id}/orders", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert (
        answer.json()["client_id"] == "svc"
        and answer.json()["audience"] == "https://orders.example"
    )
    token_request = oauth_server.stats()["token_log"][0]
    assert token_request["auth"] == "post" and token_request["params"]["resource"] == "orders"


def test_a_token_request_credential_made_in_the_form_fetches_and_sends_its_token(
    page: Page,
    admin_server,
    owner,
    owner_api,
    client,
    gateway,
    oauth_server,  # noqa: F811
):
    new_form(page, admin_server, owner, client)
    page.get_by_label("Name", exact=True).fill("Issuer")
    fill(
        page,
        {
            "Used as": "target credential (injected toward the API)",
            **TOKEN_REQUEST,
            "Token URL (token request)": oauth_server.url("/custom/token"),
            "Fields (token request)": f"user={CUSTOM_USERNAME}\npassword={CUSTOM_PASSWORD}",
            "Request headers (token request)": "X-Client: portcullis",
            "Body (token request)": (
                '{"username": "{{fields.user}}", "password": "{{fields.password}}"}'
            ),
            "Body format (token request)": "form (application/x-www-form-urlencoded)",
            "Token JSON path (token request)": "data.token",
            "Lifetime from (token request)": "a JSON path in the answer (seconds)",
            "Lifetime JSON path (token request)": "data.ttl",
            "Header (token request)": "X-Token",
            "Prefix (token request)": "",
        },
    )
    page.get_by_role("button", name="Create credential").click()
    expect(page.get_by_text("Credential Issuer created.")).to_be_visible()
    credential = made(owner_api, client, "Issuer")
    expected = {
        "tokenUrl": oauth_server.url("/custom/token"),
        "method": "POST",
        "bodyFormat": "form",
        "tokenLocation": "body",
        "tokenPath": "data.token",
        "ttlFrom": "path",
        "ttlPath": "data.ttl",
        "injectIn": "header",
        "header": "X-Token",
        "prefix": "",
        "fieldNames": ["password", "user"],
    }
    settings = credential["credentialSettings"]
    assert {name: settings.get(name) for name in expected} == expected
    page.get_by_role("link", name="Issuer").click()  # its page: settings, never the sealed values
    expect(page.locator("#credential-details")).to_contain_text("data.ttl")
    assert CUSTOM_PASSWORD not in page.content()

    resource = oauth_server.url("/resource")
    proxy_id = bind_proxy(owner_api, client, credential["credentialId"], resource)
    serve(gateway, SimpleNamespace(id=proxy_id))
    answer = call(gateway, "GET", f"/api/{proxy_id}/orders", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["via"] == "x-token" and answer.json()["kind"] == "custom"
    request = oauth_server.stats()["custom_log"][0]
    assert request["ok"] and request["content_type"].startswith("application/x-www-form-urlencoded")
    assert request["headers"]["x-client"] == "portcullis"


# --- authorization_code: pending, Connect, consent, connected --------------------------------

CALLBACK = "/ui/oauth/callback"


@pytest.fixture(scope="module")
def connect_admin(tmp_path_factory):
    """An admin whose code exchange may reach the provider on 127.0.0.1."""
    server = start_admin(
        tmp_path_factory.mktemp("web-oauth-admin"), PORTCULLIS_ALLOW_TARGETS="127.0.0.1"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def connect_gateway(connect_admin, tmp_path_factory):
    """A real data plane on that admin's store."""
    proxy = start_proxy(connect_admin, tmp_path_factory.mktemp("web-oauth-proxy"))
    yield proxy
    proxy.stop()


@pytest.fixture
def person(connect_admin) -> Api:
    """A user of `connect_admin` with a client of their own (the API's `client_id` attribute)."""
    _, api = new_user(connect_admin)
    api.client_id = new_client(api, "Connected")
    return api


def public_client(oauth, admin) -> str:
    """A public client (PKCE, no secret) at the provider that may come back to `admin`."""
    return oauth.register_client(
        "portcullis-web", None, auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=[admin.base_url + CALLBACK], scope="read write",
    ).client_id  # fmt: skip


def create_in_form(page: Page, admin, api: Api, oauth, client_id: str) -> None:
    """An authorization_code + PKCE credential made through the form; on its page after."""
    sign_in(page, admin.base_url, api.token)
    page.goto(f"{admin.base_url}/ui/c/{api.client_id}/credentials/new")
    page.get_by_label("Name", exact=True).fill("Provider")
    fill(
        page,
        {
            "Used as": "target credential (injected toward the API)",
            **AUTH_CODE,
            "Token URL (OAuth2)": oauth.url("/token"),
            "Authorize URL (OAuth2)": oauth.url("/authorize"),
            "Client ID (OAuth2)": client_id,
            "Client authentication (OAuth2)": "none (public client, PKCE)",
            "Use PKCE (S256) (OAuth2)": "yes",
            "Scopes (OAuth2)": "read",
        },
    )
    page.get_by_role("button", name="Create credential").click()
    expect(page.get_by_role("heading", name="Credential Provider")).to_be_visible()


def connection(page: Page):
    return page.locator("#connection-status")


def consent(page: Page, admin, client_id: str, button: str = "Connect") -> None:
    """Press Connect (or Reconnect), check what goes to the provider, and allow."""
    page.get_by_role("button", name=button).click()
    expect(page.get_by_role("heading", name=f"Authorize {client_id}")).to_be_visible()
    query = parse_qs(urlsplit(page.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert query["redirect_uri"] == [admin.base_url + CALLBACK]
    assert query["state"] and "code_verifier" not in query  # the verifier stays in the admin
    page.locator("#allow").click()
    expect(page.get_by_text("Connected: Provider can now mint access tokens.")).to_be_visible()
    expect(connection(page)).to_have_text("connected")


def test_connect_and_consent_at_the_provider_make_the_credential_connected(
    page: Page,
    connect_admin,
    person,
    oauth_server,  # noqa: F811
):
    client_id = public_client(oauth_server, connect_admin)
    create_in_form(page, connect_admin, person, oauth_server, client_id)
    expect(page.get_by_text("Press Connect to authorize it at the provider.")).to_be_visible()
    expect(connection(page)).to_have_text("pending authorization")
    expect(page.locator("#connected-at")).to_have_text("never")

    # Pending: listed only with the toggle.
    page.locator("nav.sections").get_by_role("link", name="Credentials", exact=True).click()
    expect(page.locator("tr[data-credential='Provider']")).to_have_count(0)
    page.get_by_role("link", name="Show pending authorization").click()
    row = page.locator("tr[data-credential='Provider']")
    expect(row.locator(".connection")).to_have_text("pending authorization")
    row.get_by_role("link", name="Provider").click()

    consent(page, connect_admin, client_id)
    expect(page.locator("#connected-at")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d .* UTC$"))
    expect(page.locator("#last-error")).to_have_text("none")
    expect(page.get_by_role("button", name="Reconnect")).to_be_visible()
    assert oauth_server.stats()["token_requests"]["by_grant"] == {"authorization_code": 1}
    page.locator("nav.sections").get_by_role("link", name="Credentials", exact=True).click()
    connected = page.locator("tr[data-credential='Provider']").locator(".connection")
    expect(connected).to_have_text("connected")  # listed now without the toggle


def test_a_connected_credential_s_tokens_reach_the_target_refreshed_and_reconnected(
    page: Page,
    connect_admin,
    connect_gateway,
    person,
    oauth_server,  # noqa: F811
):
    oauth_server.set_lifetime(2)
    client_id = public_client(oauth_server, connect_admin)
    create_in_form(page, connect_admin, person, oauth_server, client_id)
    credential_id = page.locator("#credential-details code").first.inner_text()
    consent(page, connect_admin, client_id)
    proxy_id = bind_proxy(person, person.client_id, credential_id, oauth_server.url("/resource"))
    serve(connect_gateway, SimpleNamespace(id=proxy_id))

    # The target sees a token the provider issued to this client, refreshed after expiry.
    first = call(connect_gateway, "GET", f"/api/{proxy_id}/orders", headers=AUTH)
    assert first.status_code == 200, first.text
    assert first.json()["client_id"] == client_id and first.json()["via"] == "authorization"
    wait_expired(oauth_server, latest_token(oauth_server))
    second = call(connect_gateway, "GET", f"/api/{proxy_id}/orders", headers=AUTH)
    assert second.status_code == 200, second.text
    assert second.json()["token_id"] != first.json()["token_id"]
    assert oauth_server.stats()["refresh_reuse"] == 0  # the rotated refresh token was used
    page.reload()
    expect(page.locator("#last-refresh")).to_have_text(re.compile(r"UTC$"))
    expect(page.locator("#access-expires")).to_have_text(re.compile(r"UTC$"))

    # The provider revokes the refresh token: "needs reconnecting", then Reconnect.
    oauth_server.revoke_refresh_tokens(client_id)
    wait_expired(oauth_server, latest_token(oauth_server))
    refused = call(connect_gateway, "GET", f"/api/{proxy_id}/orders", headers=AUTH)
    assert refused.status_code == 502, refused.text
    page.reload()
    expect(connection(page)).to_have_text("needs reconnecting")
    expect(page.locator("#last-error")).not_to_have_text("none")
    consent(page, connect_admin, client_id, button="Reconnect")
    again = wait_until(
        lambda: (
            r if (r := call(connect_gateway, "GET", f"/api/{proxy_id}/x", headers=AUTH)).ok
            else None
        ),
        "the gateway to use the new connection",
    )  # fmt: skip
    assert again.json()["client_id"] == client_id


def test_deny_at_the_provider_shows_the_error_and_stays_pending(
    page: Page,
    connect_admin,
    person,
    oauth_server,  # noqa: F811
):
    client_id = public_client(oauth_server, connect_admin)
    create_in_form(page, connect_admin, person, oauth_server, client_id)
    page.get_by_role("button", name="Connect").click()
    page.locator("#deny").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "The provider did not authorize the connection"
    )
    expect(page.get_by_role("alert")).to_contain_text("access_denied")
    page.goto(
        connect_admin.base_url + "/ui/c/" + person.client_id + "/credentials?includeTemporary=true"
    )
    row = page.locator("tr[data-credential='Provider']")
    expect(row.locator(".connection")).to_have_text("pending authorization")
    assert oauth_server.stats()["token_requests"]["total"] == 0


def test_a_reading_member_sees_the_connection_but_cannot_connect(
    page: Page, admin_server, owner_api, client, make_user
):
    secret = {
        "grantType": "authorization_code", "tokenUrl": TOKEN_URL,
        "authorizeUrl": "http://127.0.0.1:9/authorize", "clientId": "app",
    }  # fmt: skip
    made_one = create(
        owner_api,
        f"/api/clients/{client}/credentials",
        {"credentialName": "Provider", "credentialType": "target", "credentialRegion": REGION,
         "credentialAuthType": "oauth2", "credentialSecret": secret},
        "credentials",
    )  # fmt: skip
    reader = make_user()
    add_member(owner_api, client, reader, "user")
    sign_in(page, admin_server.base_url, reader.token)
    here = f"{admin_server.base_url}/ui/c/{client}/credentials/{made_one['credentialId']}"
    page.goto(here)
    expect(connection(page)).to_have_text("pending authorization")
    expect(page.get_by_role("button", name="Connect")).to_have_count(0)
    # The POST itself is refused too (with the reader's own CSRF token).
    token = page.evaluate("() => document.querySelector('input[name=csrf_token]').value")
    refused = page.request.post(f"{here}/connect", form={"csrf_token": token}, max_redirects=0)
    assert refused.status == 403


def test_connect_for_a_credential_without_consent_shows_the_apis_refusal(
    page: Page, admin_server, owner, owner_api, client
):
    secret = {"tokenUrl": TOKEN_URL, "clientId": "app", "clientSecret": "s"}
    made_one = create(
        owner_api,
        f"/api/clients/{client}/credentials",
        {"credentialName": "Machine", "credentialType": "target", "credentialRegion": REGION,
         "credentialAuthType": "oauth2", "credentialSecret": secret},
        "credentials",
    )  # fmt: skip
    refused = owner_api.post(
        f"/api/clients/{client}/credentials/{made_one['credentialId']}/authorize"
    )
    assert refused.status_code == 400, refused.text
    sign_in(page, admin_server.base_url, owner.token)
    here = f"{admin_server.base_url}/ui/c/{client}/credentials/{made_one['credentialId']}"
    page.goto(here)
    expect(page.locator("#connection")).to_have_count(0)  # client_credentials: nobody connects
    token = page.evaluate("() => document.querySelector('input[name=csrf_token]').value")
    answer = page.request.post(f"{here}/connect", form={"csrf_token": token}, max_redirects=0)
    assert answer.status == 302 and answer.headers["location"].endswith(here.split("/ui")[1])
    page.goto(here)
    expect(page.get_by_role("status")).to_have_text(refused.json()["message"])
