"""Failed sign-ins are throttled per account and per source address, for the web and the API.

A dedicated admin process (lockouts must not reach the shared test admin);
clients connect from different loopback addresses (127.0.x.y) so the admin
sees different machines. Nothing is mocked.
"""

from __future__ import annotations

import time

import pytest

from tests.support import start_admin
from tests.web_support import COOKIE, PASSWORD, Browser, api_from, cookie_payload, new_user

MAX_FAILURES = 10
WINDOW_S = 600
WRONG = "Email or password is wrong"
LOCKED = "Too many failed sign-ins; try again in 10 minutes"
DEADLINE_S = 30


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    server = start_admin(
        tmp_path_factory.mktemp("throttle"),
        PORTCULLIS_SIGN_IN_MAX_FAILURES=str(MAX_FAILURES),
        PORTCULLIS_SIGN_IN_WINDOW_SECONDS=str(WINDOW_S),
    )
    yield server
    server.stop()


def assert_locked_page(answer) -> None:
    """429 with Retry-After and the message, on the sign-in page; no session was started."""
    assert answer.status_code == 429, answer.text
    assert 0 < int(answer.headers["Retry-After"]) <= WINDOW_S
    assert LOCKED in answer.text
    cookie = answer.cookies.get(COOKIE)
    assert cookie is None or "sid" not in cookie_payload(cookie)


def assert_locked_api(answer) -> None:
    assert answer.status_code == 429, answer.text
    assert 0 < int(answer.headers["Retry-After"]) <= WINDOW_S
    body = answer.json()
    assert body["error"]["code"] == "TOO_MANY_FAILURES"
    assert body["message"] == body["error"]["message"] == LOCKED


def fail_until_locked(attempts) -> None:
    """The first MAX_FAILURES - 1 attempts answer "wrong"; the one reaching the limit, 429."""
    answers = [attempt(i) for i, attempt in enumerate(attempts)]
    assert len(answers) == MAX_FAILURES
    for answer in answers[:-1]:
        assert answer.status_code == 200 and WRONG in answer.text, answer.status_code
    assert_locked_page(answers[-1])


@pytest.mark.parametrize("account", ["existing", "unknown"])
def test_failures_from_many_addresses_lock_the_account(admin, account):
    """Per account: each failure comes from another address, so only the account counts."""
    if account == "existing":
        email, api = new_user(admin)
    else:
        email, api = f"nobody-{time.monotonic_ns()}@example.test", None
    subnet = 1 if account == "existing" else 2

    fail_until_locked(
        lambda i, address=f"127.0.{subnet}.{n + 1}": Browser(
            admin.base_url, address
        ).sign_in_with_password(email, f"wrong-password-{i}")
        for n in range(MAX_FAILURES)
    )
    # The right password is refused too, from yet another address, in any letter case.
    fresh = Browser(admin.base_url, f"127.0.{subnet}.200")
    assert_locked_page(fresh.sign_in_with_password(email.upper(), PASSWORD))
    assert not fresh.signed_in()
    # Other accounts, from the same addresses, are not locked.
    other_email, _ = new_user(admin)
    other = Browser(admin.base_url, f"127.0.{subnet}.1")
    assert other.sign_in_with_password(other_email, PASSWORD).status_code == 302
    if api is not None:  # the account's API tokens are throttled per address, not per account
        assert api_from(admin.base_url, api.token, f"127.0.{subnet}.201").get("/api/users/me").ok


def test_failures_for_many_accounts_lock_the_address(admin):
    """Per address: each failure names another account (some exist, some do not)."""
    address, elsewhere = "127.0.3.1", "127.0.3.2"
    existing = [new_user(admin, password=None)[0] for _ in range(3)]
    emails = existing + [f"ghost{n}@example.test" for n in range(MAX_FAILURES - len(existing))]
    fail_until_locked(
        lambda i, email=email: Browser(admin.base_url, address).sign_in_with_password(
            email, f"guess-{i}"
        )
        for email in emails
    )
    email, api = new_user(admin)
    locked = Browser(admin.base_url, address)
    assert_locked_page(locked.sign_in_with_password(email, PASSWORD))
    assert_locked_page(locked.sign_in_with_token(api.token))
    assert_locked_api(api_from(admin.base_url, api.token, address).get("/api/users/me"))
    assert not locked.signed_in()

    free = Browser(admin.base_url, elsewhere)
    assert free.sign_in_with_password(email, PASSWORD).status_code == 302 and free.signed_in()


def test_bad_core_api_tokens_lock_the_address(admin):
    address, elsewhere, anonymous = "127.0.4.1", "127.0.4.2", "127.0.4.3"
    _, api = new_user(admin, password=None)
    spellings = ["u-guess{}", "Bearer u-guess{}", "bearer u-{}", "not-prefixed-{}", "u-"]
    answers = [
        api_from(admin.base_url, None, address).get(
            "/api/clients", headers={"Authorization": spellings[i % len(spellings)].format(i)}
        )
        for i in range(MAX_FAILURES)
    ]
    for answer in answers[:-1]:
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "UNAUTHORIZED"
    assert_locked_api(answers[-1])
    # A valid token from that address is refused while the lock lasts; so is a web sign-in.
    assert_locked_api(api_from(admin.base_url, api.token, address).get("/api/users/me"))
    assert_locked_page(Browser(admin.base_url, address).sign_in_with_token(api.token))
    assert api_from(admin.base_url, api.token, elsewhere).get("/api/users/me").ok
    # Sending no token at all is no guess: it does not count.
    for _ in range(MAX_FAILURES + 2):
        assert api_from(admin.base_url, None, anonymous).get("/api/clients").status_code == 401
    assert api_from(admin.base_url, api.token, anonymous).get("/api/users/me").ok


def test_failed_token_sign_ins_on_the_web_count_for_the_address(admin):
    address = "127.0.5.1"
    fail = [
        Browser(admin.base_url, address).sign_in_with_token(f"u-not-a-token-{i}")
        for i in range(MAX_FAILURES)
    ]
    for answer in fail[:-1]:
        assert answer.status_code == 200 and "This token is not valid" in answer.text
    assert_locked_page(fail[-1])


def test_failures_are_logged_with_email_and_address_but_no_secret(admin):
    email, api = new_user(admin)
    passwords = [f"Pw-Secret-{n}-qZ" for n in range(3)]
    tokens = [f"u-TokenSecret{n}xY" for n in range(3)]
    for password in passwords:
        Browser(admin.base_url, "127.0.6.1").sign_in_with_password(email, password)
    for token in tokens:
        api_from(admin.base_url, None, "127.0.6.2").get(
            "/api/users/me", headers={"Authorization": token}
        )
        Browser(admin.base_url, "127.0.6.3").sign_in_with_token(token)
    log = admin.log_text()
    assert f"failed password sign-in for '{email}' from address 127.0.6.1" in log
    assert "unknown user token from address 127.0.6.2" in log
    assert "unknown user token from address 127.0.6.3" in log
    for secret in [*passwords, *tokens, PASSWORD, api.token]:
        assert secret not in log, secret
        assert secret[2:-2] not in log, secret


def test_every_admin_process_on_the_store_sees_the_same_counts(admin, tmp_path):
    second = start_admin(
        tmp_path / "second",
        DATABASE_URL=admin.database_url,
        PORTCULLIS_SIGN_IN_MAX_FAILURES=str(MAX_FAILURES),
        PORTCULLIS_SIGN_IN_WINDOW_SECONDS=str(WINDOW_S),
    )
    try:
        email, _ = new_user(admin)
        for n in range(MAX_FAILURES - 1):
            server = admin if n % 2 else second
            answer = Browser(server.base_url, f"127.0.7.{n + 1}").sign_in_with_password(
                email, f"wrong-{n}"
            )
            assert answer.status_code == 200 and WRONG in answer.text
        last = Browser(second.base_url, "127.0.7.100").sign_in_with_password(email, "wrong-last")
        assert_locked_page(last)
        assert_locked_page(
            Browser(admin.base_url, "127.0.7.101").sign_in_with_password(email, PASSWORD)
        )
    finally:
        second.stop()


def test_the_lock_lifts_when_the_failures_age_out(tmp_path):
    server = start_admin(
        tmp_path / "window",
        PORTCULLIS_SIGN_IN_MAX_FAILURES="3",
        PORTCULLIS_SIGN_IN_WINDOW_SECONDS="2",
    )
    try:
        email, _ = new_user(server)
        browser = Browser(server.base_url)
        answers = [browser.sign_in_with_password(email, f"wrong-{n}") for n in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert "try again in 1 minute" in answers[-1].text
        deadline = time.monotonic() + DEADLINE_S
        while (answer := browser.sign_in_with_password(email, PASSWORD)).status_code == 429:
            assert time.monotonic() < deadline, "the lock never lifted"
            time.sleep(0.2)  # waiting out the window is what this test is about
        assert answer.status_code == 302 and browser.signed_in()
    finally:
        server.stop()
