"""The tests' OAuth2 authorization server (tests/oauth_server.py) as a process, and its client.

    pytest_plugins = ["tests.oauth_support"]  # in the test module (or import in conftest.py)

    def test_something(oauth_server):
        client = oauth_server.register_client("svc", grant_types=["client_credentials"])
        oauth_server.set_lifetime(2)
        token_url = oauth_server.url("/token")
        ...
        assert oauth_server.stats()["max_concurrent_token_requests"] == 1

The fixture is session-scoped (one process) and resets the server before each test.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import requests

from tests.oauth_server import DEFAULT_CUSTOM_PASSWORD, DEFAULT_CUSTOM_USERNAME
from tests.proxy_support import free_port
from tests.support import ROOT, stop_process

START_TIMEOUT_S = 20
CUSTOM_USERNAME = DEFAULT_CUSTOM_USERNAME
CUSTOM_PASSWORD = DEFAULT_CUSTOM_PASSWORD


class RegisteredClient(NamedTuple):
    """A registered client; as a pair it is also `requests`' `auth=` for client_secret_basic."""

    client_id: str
    client_secret: str | None


class OAuthServer:
    """One `python -m tests.oauth_server` process on 127.0.0.1 and its control API."""

    def __init__(self, directory: Path, port: int | None = None, extra_args: tuple[str, ...] = ()):
        self.directory = directory
        self.port = port or free_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None
        self.http = requests.Session()
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        """An absolute URL on this server, e.g. `url("/token")`."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def start(self) -> OAuthServer:
        log = (self.directory / "oauth-server.log").open("ab")
        command = [sys.executable, "-m", "tests.oauth_server", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, *self.extra_args], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"the OAuth2 test server exited:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the OAuth2 test server did not start:\n{self.log_text()}")
            time.sleep(0.05)  # polling the new process until it answers, bounded
        return self

    def answers(self) -> bool:
        try:
            return requests.get(self.url("/__control/health"), timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def log_text(self) -> str:
        path = self.directory / "oauth-server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ---- the control API ----

    def _post(self, path: str, body: dict | None = None) -> dict:
        response = self.http.post(self.url(path), json=body or {}, timeout=10)
        if response.status_code >= 400:
            raise AssertionError(f"{path}: {response.status_code} {response.text}")
        return response.json()

    def register_client(
        self,
        client_id: str,
        client_secret: str | None = "",
        *,
        grant_types: list[str] | None = None,
        redirect_uris: list[str] | None = None,
        auth_method: str | None = None,
        scope: str | None = None,
        access_lifetime: int | None = None,
    ) -> RegisteredClient:
        """Register (or replace) a client. `client_secret=""` makes one up; `None`: public."""
        body: dict = {"client_id": client_id, "redirect_uris": redirect_uris or []}
        if client_secret != "":
            body["client_secret"] = client_secret
        for name, value in (
            ("grant_types", grant_types),
            ("token_endpoint_auth_method", auth_method),
            ("scope", scope),
            ("access_lifetime", access_lifetime),
        ):
            if value is not None:
                body[name] = value
        answer = self._post("/__control/clients", body)
        return RegisteredClient(answer["client_id"], answer["client_secret"])

    def configure(self, **settings) -> dict:
        """Change server settings: access_lifetime, rotate_refresh_tokens, code_lifetime,
        custom_username, custom_password, custom_ttl."""
        return self._post("/__control/config", settings)

    def set_lifetime(self, seconds: int) -> None:
        """The lifetime of access tokens issued from now on (clients without their own)."""
        self.configure(access_lifetime=seconds)

    def set_custom_ttl(self, seconds: int) -> None:
        self.configure(custom_ttl=seconds)

    def set_rotation(self, rotate: bool) -> None:
        self.configure(rotate_refresh_tokens=rotate)

    def slow(self, seconds: float) -> None:
        """Hold every /token and /custom/* answer this long (0: no delay)."""
        self._post("/__control/slow", {"seconds": seconds})

    def release(self) -> None:
        """Answer every request the slow-down holds now (later ones are held again)."""
        self._post("/__control/release")

    def revoke_client_secret(self, client_id: str, new_secret: str | None = None) -> str:
        """Rotate the client's secret: the old one now fails with `invalid_client`."""
        body = {"client_secret": new_secret} if new_secret else {}
        return self._post(f"/__control/clients/{client_id}/rotate-secret", body)["client_secret"]

    def revoke_refresh_tokens(self, client_id: str) -> int:
        """Revoke every refresh token of the client: the next refresh fails `invalid_grant`."""
        return self._post(f"/__control/clients/{client_id}/revoke-refresh-tokens")["revoked"]

    def revoke_access_tokens(self, client_id: str) -> int:
        """Revoke every access token of the client: `/resource` answers 401 to them."""
        return self._post(f"/__control/clients/{client_id}/revoke-access-tokens")["revoked"]

    def revoke_token(self, token_id: str) -> int:
        """Revoke one issued token id (its access and refresh token)."""
        return self._post(f"/__control/tokens/{token_id}/revoke")["revoked"]

    def stats(self) -> dict:
        response = self.http.get(self.url("/__stats"), timeout=10)
        response.raise_for_status()
        return response.json()

    def issued_secrets(self) -> dict:
        """Every client secret, access, refresh and custom token the server knows (leak tests)."""
        response = self.http.get(self.url("/__control/secrets"), timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self, counters_only: bool = False) -> None:
        """Back to a fresh server (clients, tokens, settings, counters) or only counters."""
        self._post("/__control/reset", {"counters_only": counters_only})


@pytest.fixture(scope="session")
def oauth_server_process(tmp_path_factory):
    """The OAuth2 test server process, shared by the session."""
    server = OAuthServer(tmp_path_factory.mktemp("oauth-server")).start()
    yield server
    server.stop()


@pytest.fixture
def oauth_server(oauth_server_process) -> OAuthServer:
    """The OAuth2 test server, reset to a fresh state for this test."""
    oauth_server_process.reset()
    return oauth_server_process
