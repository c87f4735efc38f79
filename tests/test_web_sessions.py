"""Web admin sessions are server-side: the cookie holds only a session reference.

Real admin processes (their own, so the short timeouts do not touch other
tests), real SQLite, an HTTP client that keeps cookies and sends the CSRF
tokens the pages carry.
"""

from __future__ import annotations

import re
import time

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import column, insert, select, table

from models import UserToken, utcnow
from models.store import make_engine, make_session_factory
from models.tokens import generate_user_token, hash_token, token_hint
from tests.support import ROOT, Api, start_admin
from tests.web_support import PASSWORD, Browser, cookie_payload, new_user

DEADLINE_S = 30
ALLOWED_COOKIE_KEYS = {"sid", "csrf_token", "_flashes"}
CURRENT_ROW = re.compile(r'data-session="(sess_[0-9a-f]+)" class="current"')


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    server = start_admin(tmp_path_factory.mktemp("sessions"))
    yield server
    server.stop()


def signed_in_browser(server, how: str) -> tuple[Browser, Api, str]:
    """A browser signed in with a password or with the user's token."""
    email, api = new_user(server)
    browser = Browser(server.base_url)
    if how == "password":
        answer = browser.sign_in_with_password(email, PASSWORD)
    else:
        answer = browser.sign_in_with_token(api.token)
    assert answer.status_code == 302, answer.text
    assert browser.signed_in()
    return browser, api, email


def session_ids(api: Api) -> list[str]:
    listed = api.get("/api/users/me/sessions")
    assert listed.status_code == 200, listed.text
    return [s["sessionId"] for s in listed.json()["sessions"]]


@pytest.mark.parametrize("how", ["password", "token"])
def test_the_cookie_carries_a_session_reference_and_never_a_token(admin, how):
    browser, api, _ = signed_in_browser(admin, how)
    payload = cookie_payload(browser.cookie)
    assert set(payload) <= ALLOWED_COOKIE_KEYS, payload
    assert api.token not in browser.cookie and api.token not in str(payload)
    assert not any(str(v).startswith("u-") for v in payload.values())
    # Only the secret's hash is stored: a copy of the database cannot resume the session.
    store = admin.store_bytes()
    assert payload["sid"].encode() not in store
    assert hash_token(payload["sid"]).encode() in store


@pytest.mark.parametrize("how", ["password", "token"])
def test_signing_out_ends_the_session_so_a_copied_cookie_is_refused(admin, how):
    browser, api, _ = signed_in_browser(admin, how)
    copied = browser.cookie
    assert browser.with_cookie(copied).signed_in(), "the copy works while the session lives"
    assert len(session_ids(api)) == 1

    assert browser.sign_out().status_code == 302
    assert not browser.signed_in()
    replayed = browser.with_cookie(copied)
    assert not replayed.signed_in()
    assert replayed.post("/ui/", {"name": "replayed"}).status_code in (302, 400)
    assert session_ids(api) == []
    assert api.get("/api/clients").json()["clients"] == [], "nothing was created"
    # Signing out ends the session, not the user's API token typed in to start it.
    assert api.get("/api/users/me").status_code == 200


def test_every_sign_in_gets_a_new_session_and_ends_the_one_before(admin):
    email, api = new_user(admin)
    browser = Browser(admin.base_url)
    browser.get("/ui/login")
    planted = browser.cookie  # what an attacker could have set before the victim signs in
    assert browser.sign_in_with_password(email, PASSWORD).status_code == 302
    first = browser.cookie
    assert cookie_payload(first)["sid"] != cookie_payload(planted).get("sid")
    assert not browser.with_cookie(planted).signed_in()

    assert browser.sign_in_with_token(api.token).status_code == 302
    assert cookie_payload(browser.cookie)["sid"] != cookie_payload(first)["sid"]
    assert not browser.with_cookie(first).signed_in(), "signing in again ended the old session"
    assert browser.signed_in() and len(session_ids(api)) == 1


def test_sessions_are_listed_and_revoked_through_the_api(admin):
    email, api = new_user(admin)
    laptop, phone = Browser(admin.base_url), Browser(admin.base_url)
    assert laptop.sign_in_with_password(email, PASSWORD).status_code == 302
    assert phone.sign_in_with_token(api.token).status_code == 302

    listed = api.get("/api/users/me/sessions").json()
    assert listed["message"] == "Success" and len(listed["sessions"]) == 2
    by_method = {s["signedInWith"]: s for s in listed["sessions"]}
    assert set(by_method) == {"password", "token"}
    for shown in listed["sessions"]:
        assert shown["address"] == "127.0.0.1" and shown["userAgent"].startswith("python-requests")
        assert shown["current"] is False, "a token caller is none of the sessions"
        assert {"createdAt", "lastSeenAt", "expiresAt", "sessionId"} <= set(shown)
    assert by_method["token"]["tokenId"] and by_method["password"]["tokenId"] is None

    # Another user cannot end them, nor see them.
    _, stranger = new_user(admin, password=None)
    phone_id = by_method["token"]["sessionId"]
    assert stranger.delete(f"/api/users/me/sessions/{phone_id}").status_code == 404
    assert session_ids(stranger) == []
    assert phone.signed_in()

    ended = api.delete(f"/api/users/me/sessions/{phone_id}")
    assert ended.status_code == 200 and ended.json()["sessions"][0]["sessionId"] == phone_id
    assert not phone.signed_in() and laptop.signed_in()
    assert api.delete(f"/api/users/me/sessions/{phone_id}").status_code == 404

    everything = api.delete("/api/users/me/sessions")
    assert everything.status_code == 200 and everything.json()["message"] == "1 other session ended"
    assert not laptop.signed_in() and session_ids(api) == []


def own_session_id(browser: Browser) -> str:
    """The id the account page marks as "this session"."""
    return CURRENT_ROW.search(browser.get("/ui/account").text).group(1)


def test_the_web_account_page_revokes_other_sessions(admin):
    email, api = new_user(admin)
    here, there, elsewhere = (Browser(admin.base_url) for _ in range(3))
    for browser in (here, there, elsewhere):
        assert browser.sign_in_with_password(email, PASSWORD).status_code == 302
    page = here.get("/ui/account").text
    assert page.count("data-session=") == 3 and page.count("this session") == 1
    assert own_session_id(here) != own_session_id(there)

    # Revoke one with its row's button, then all the others.
    csrf = here.csrf("/ui/account")
    revoke = f"/ui/account/sessions/{own_session_id(there)}/revoke"
    assert here.post(revoke, {"csrf_token": csrf}).status_code == 302
    assert not there.signed_in() and elsewhere.signed_in() and here.signed_in()
    csrf = here.csrf("/ui/account")
    assert here.post("/ui/account/sessions/revoke-others", {"csrf_token": csrf}).status_code == 302
    assert not elsewhere.signed_in() and here.signed_in()
    assert session_ids(api) == [own_session_id(here)]
    # Without the form's CSRF token nothing is revoked.
    assert here.post(f"/ui/account/sessions/{own_session_id(here)}/revoke", {}).status_code == 400
    assert here.signed_in()


def test_revoking_the_token_signed_in_with_ends_those_sessions(admin):
    email, api = new_user(admin)
    second = api.post("/api/users/me/tokens", json={"label": "for the browser"}).json()["tokens"][0]
    by_token, by_password = Browser(admin.base_url), Browser(admin.base_url)
    assert by_token.sign_in_with_token(second["token"]).status_code == 302
    assert by_password.sign_in_with_password(email, PASSWORD).status_code == 302

    assert api.delete(f"/api/users/me/tokens/{second['tokenId']}").status_code == 200
    assert not by_token.signed_in()
    assert by_password.signed_in()
    assert len(session_ids(api)) == 1


def test_changing_the_password_signs_out_the_other_sessions(admin):
    email, _ = new_user(admin)
    here, there = Browser(admin.base_url), Browser(admin.base_url)
    for browser in (here, there):
        assert browser.sign_in_with_password(email, PASSWORD).status_code == 302
    changed = here.post(
        "/ui/account",
        {
            "pw-csrf_token": here.csrf("/ui/account"),
            "pw-current_password": PASSWORD,
            "pw-password": "a brand new passphrase",
            "pw-confirm": "a brand new passphrase",
        },
    )
    assert changed.status_code == 302
    assert here.signed_in() and not there.signed_in()


def test_the_core_api_does_not_take_the_session_cookie(admin):
    browser, _, _ = signed_in_browser(admin, "password")
    for path in ("/api/users/me", "/api/users/me/sessions", "/api/clients"):
        answer = browser.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["error"]["code"] == "UNAUTHORIZED"
    forged = browser.get("/api/users/me", headers={"Portcullis.Web-Session": "sess_x"})
    assert forged.status_code == 401


def test_an_idle_session_expires(tmp_path):
    server = start_admin(tmp_path / "idle", PORTCULLIS_WEB_SESSION_IDLE_SECONDS="2")
    try:
        email, api = new_user(server)
        browser = Browser(server.base_url)
        assert browser.sign_in_with_password(email, PASSWORD).status_code == 302
        assert browser.signed_in()
        # Left alone (the API's list does not touch it) until the idle timeout passes.
        deadline = time.monotonic() + DEADLINE_S
        while session_ids(api):
            assert time.monotonic() < deadline, "the idle session never expired"
            time.sleep(0.2)  # waiting out the idle timeout is what this test is about
        assert not browser.signed_in()
        login = browser.get("/ui/login")
        assert "Your session has ended; sign in again." in login.text
    finally:
        server.stop()


def test_a_session_in_constant_use_still_ends_at_its_absolute_timeout(tmp_path):
    server = start_admin(
        tmp_path / "absolute",
        PORTCULLIS_WEB_SESSION_IDLE_SECONDS="3600",
        PORTCULLIS_WEB_SESSION_MAX_SECONDS="3",
    )
    try:
        email, api = new_user(server)
        browser = Browser(server.base_url)
        assert browser.sign_in_with_password(email, PASSWORD).status_code == 302
        deadline = time.monotonic() + DEADLINE_S
        while browser.signed_in():  # every page view is a use: idleness cannot end it
            assert time.monotonic() < deadline, "the session outlived its absolute timeout"
            time.sleep(0.2)  # waiting out the absolute timeout is what this test is about
        assert session_ids(api) == []
    finally:
        server.stop()


def test_upgrading_revokes_the_tokens_old_cookies_carried(settings):
    """Revision 0006 revokes the "Web sign-in" tokens earlier versions kept in cookies."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes.update(database_url=settings.database_url, configure_logging=False)
    command.upgrade(config, "0005")
    engine = make_engine(settings.database_url)
    try:
        # Rows as revision 0005 stores them: plain SQL, since today's models have more columns.
        tokens = table(
            "user_tokens",
            *(column(n) for n in ("id", "user_id", "token_hash", "hint", "label", "created_at")),
        )
        now = utcnow()
        with engine.begin() as connection:
            connection.execute(
                insert(table("users", column("id"), column("email"), column("created_at"),
                             column("updated_at"))),
                [{"id": "user_old", "email": "old@example.test", "created_at": now,
                  "updated_at": now}],
            )  # fmt: skip
            for number, label in enumerate(("Web sign-in", "CI deploys")):
                token = generate_user_token()
                connection.execute(
                    insert(tokens),
                    [{"id": f"token_old{number}", "user_id": "user_old",
                      "token_hash": hash_token(token), "hint": token_hint(token),
                      "label": label, "created_at": now}],
                )  # fmt: skip
        command.upgrade(config, "head")
        with make_session_factory(engine)() as session:
            revoked = {t.label: t.revoked for t in session.scalars(select(UserToken))}
        assert revoked == {"Web sign-in": True, "CI deploys": False}
        command.downgrade(config, "0005")
        command.upgrade(config, "head")
    finally:
        engine.dispose()
