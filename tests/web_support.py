"""A browser-like HTTP client for the web admin: cookies, CSRF tokens, a chosen source address.

The admin listens on 127.0.0.1; connecting from another loopback address
(127.0.0.2, ...) makes it see a different client address, which is how the
throttling tests act as several machines.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import time
import zlib

import requests
from playwright.sync_api import Browser as PlaywrightBrowser
from playwright.sync_api import Page, expect
from requests.adapters import HTTPAdapter

from tests.support import AdminServer, Api, create_user

PASSWORD = "correct horse battery staple"
COOKIE = "session"
_emails = itertools.count(1)
CSRF = re.compile(r'name="([a-z]+-)?csrf_token" type="hidden" value="([^"]+)"')


class SourceAddressAdapter(HTTPAdapter):
    """Connections from `address` (any 127.0.0.0/8 address works on Linux loopback)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Browser:
    """A cookie jar against one admin, optionally from one source address."""

    def __init__(self, base_url: str, address: str | None = None):
        self.base_url = base_url
        self.http = requests.Session()
        if address:
            self.http.mount("http://", SourceAddressAdapter(address))

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.base_url + path, timeout=30, allow_redirects=False, **kwargs)

    def post(self, path: str, data: dict, **kwargs) -> requests.Response:
        return self.http.post(
            self.base_url + path, data=data, timeout=30, allow_redirects=False, **kwargs
        )

    def csrf(self, path: str) -> str:
        """The CSRF token of the forms on page `path`."""
        page = self.get(path)
        assert page.status_code == 200, (path, page.status_code)
        return CSRF.search(page.text).group(2)

    def sign_in_with_password(self, email: str, password: str) -> requests.Response:
        token = self.csrf("/ui/login")
        return self.post(
            "/ui/login", {"pw-csrf_token": token, "pw-email": email, "pw-password": password}
        )

    def sign_in_with_token(self, user_token: str) -> requests.Response:
        token = self.csrf("/ui/login")
        return self.post("/ui/login", {"tk-csrf_token": token, "tk-token": user_token})

    def sign_out(self) -> requests.Response:
        return self.post("/ui/logout", {"csrf_token": self.csrf("/ui/account")})

    @property
    def cookie(self) -> str | None:
        return self.http.cookies.get(COOKIE)

    def with_cookie(self, value: str) -> Browser:
        """A fresh browser holding only the cookie `value` (a replayed copy)."""
        other = Browser(self.base_url)
        other.http.cookies.set(COOKIE, value)
        return other

    def signed_in(self) -> bool:
        """Whether the account page shows (rather than redirecting to the sign-in page)."""
        page = self.get("/ui/account")
        if page.status_code == 302:
            assert "/ui/login" in page.headers["Location"]
            return False
        assert page.status_code == 200, page.status_code
        return True


def cookie_payload(value: str) -> dict:
    """What Flask's signed session cookie says (it is signed, not encrypted)."""
    compressed = value.startswith(".")
    data = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return json.loads(zlib.decompress(raw) if compressed else raw)


def api_from(base_url: str, token: str | None, address: str) -> Api:
    """An API client connecting from `address`."""
    api = Api(base_url, token)
    api.session.mount("http://", SourceAddressAdapter(address))
    return api


def new_user(server: AdminServer, password: str | None = PASSWORD) -> tuple[str, Api]:
    """A new user (given `password`); their email and an API with their token."""
    email = f"web{next(_emails)}@example.test"
    api = Api(server.base_url, create_user(server, email).token)
    if password:
        assert api.put("/api/users/me/password", json={"password": password}).status_code == 200
    return email, api


# Real Chromium (Debian's, `make chromium`) for the browser tests (fixtures in tests/conftest.py).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests may run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",  # the machine's network is closed
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_S = 15


def sign_in(page: Page, base_url: str, token: str) -> None:
    """Sign in on the web admin's page with a user token; waits for the client list."""
    page.goto(f"{base_url}/ui/login")
    page.locator("#token-login").get_by_label("User token").fill(token)
    page.locator("#token-login").get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your clients")).to_be_visible()


def signed_in_page(browser: PlaywrightBrowser, base_url: str, token: str) -> Page:
    """A page of a new browser context (cookies of its own), signed in with `token`."""
    page = browser.new_context().new_page()
    page.set_default_timeout(WAIT_S * 1000)
    sign_in(page, base_url, token)
    return page


def reload_until(page: Page, locator, timeout: float = WAIT_S) -> None:
    """Reload until `locator` shows up: writers store in batches (bounded)."""
    deadline = time.monotonic() + timeout
    while locator.count() == 0:
        assert time.monotonic() < deadline, f"{locator} never appeared on {page.url}"
        time.sleep(0.2)  # polling a real page for a real change, bounded by the deadline
        page.reload()
