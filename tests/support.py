"""Test support: real admin processes on the run's store (tests/stores.py), and an API client."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import Engine

from models import User as StoredUser
from models import UserToken
from models.settings import Settings
from models.store import make_engine, make_session_factory
from models.tokens import generate_user_token, hash_token, token_hint
from tests import stores

ROOT = Path(__file__).resolve().parent.parent
TEST_MASTER_KEYS = "ktest:" + base64.b64encode(bytes(range(32))).decode()
LISTENING = re.compile(r"Portcullis admin listening on (http://\S+)")
START_TIMEOUT_S = 60


@dataclass
class AdminServer:
    """A `run_admin.py serve` process and the files it writes."""

    base_url: str
    process: subprocess.Popen
    var_dir: Path
    log_path: Path
    env: dict = field(repr=False)
    _engine: Engine | None = field(default=None, init=False, repr=False)

    @property
    def database_path(self) -> Path:
        """The SQLite file (SQLite runs only)."""
        return self.var_dir / "portcullis.db"

    @property
    def database_url(self) -> str:
        """The DATABASE_URL this admin (and every proxy started for it) uses."""
        return self.env.get("DATABASE_URL") or f"sqlite:///{self.database_path}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def store_bytes(self) -> bytes:
        """All the store holds: the SQLite file with its WAL, or a `pg_dump` of the database."""
        parts = [self.var_dir / name for name in ("portcullis.db", "portcullis.db-wal")]
        return stores.store_bytes(self.database_url, parts)

    @property
    def engine(self) -> Engine:
        """An engine on this admin's store for the test process (made on first use)."""
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    def settings(self, **overrides) -> Settings:
        """Settings on this admin's store and master keys, for the admin's code run in the
        test process (the CLI's functions, a pool check cycle); `overrides` as fields."""
        return Settings(
            var_dir=self.var_dir,
            database_url=self.database_url,
            master_keys=self.env.get("PORTCULLIS_MASTER_KEYS"),
            max_requests_per_minute=1000,
            max_requests_per_day=20000,
            max_api_body_bytes=1024 * 1024,
            **overrides,
        )

    def stop(self) -> None:
        stop_process(self.process)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, then kill after 10 s; always reap."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def admin_env(var_dir: Path, master_keys: str | None = TEST_MASTER_KEYS) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTCULLIS_", "DATABASE_"))}
    env.update(PORTCULLIS_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    database_url = stores.database_url_for(var_dir)
    if database_url:
        env["DATABASE_URL"] = database_url
    if master_keys:
        env["PORTCULLIS_MASTER_KEYS"] = master_keys
    return env


def start_admin(
    var_dir: Path, master_keys: str | None = TEST_MASTER_KEYS, **extra_env: str
) -> AdminServer:
    """Start `run_admin.py serve` on a free port and wait until it says it is listening."""
    var_dir.mkdir(parents=True, exist_ok=True)
    env = {**admin_env(var_dir, master_keys), **extra_env}
    log_path = var_dir / "admin.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "run_admin.py", "serve", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            return AdminServer(match.group(1), process, var_dir, log_path, env)
        if process.poll() is not None:
            raise RuntimeError(f"admin exited early:\n{log_path.read_text()}")
        time.sleep(0.05)  # polling for the "listening" line, not standing in for it
    process.kill()
    raise RuntimeError(f"admin did not start in {START_TIMEOUT_S}s:\n{log_path.read_text()}")


def run_admin_cli(server: AdminServer, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`run_admin.py ARGS` on the server's store; `env` adds environment variables."""
    return subprocess.run(
        [sys.executable, "run_admin.py", *args],
        cwd=ROOT,
        env={**server.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextlib.contextmanager
def _environment(env: dict):
    """`os.environ` is exactly `env` inside the block, as it was again after it."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_admin_cli_in_process(
    server: AdminServer, *args: str, **env: str
) -> subprocess.CompletedProcess:
    """`run_admin.py ARGS` as `run_admin_cli` runs it, but in the test process: the same
    `admin.cli.main` under the server's environment, its output captured, and `SystemExit`
    turned into the exit status and stderr line the interpreter would give (a process per
    run cost ~1 s of CPU). For arguments refused before the store is opened, and for commands
    that close their own engine (purge, roll-up-telemetry) run again; each test using it also
    runs its command through `run_admin_cli`, a real process."""
    from admin.cli import main as admin_cli_main  # the admin's code: only when it is run here

    out, err = io.StringIO(), io.StringIO()
    with (
        _environment({**server.env, **env}),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            status = admin_cli_main(list(args))
        except SystemExit as exit_:
            status = exit_.code
    if status is None:
        status = 0
    elif not isinstance(status, int):  # SystemExit("message"): printed to stderr, status 1
        err.write(f"{status}\n")
        status = 1
    return subprocess.CompletedProcess(
        ["run_admin.py", *args], status, out.getvalue(), err.getvalue()
    )


@dataclass
class User:
    id: str
    email: str
    token: str


class Api:
    """`requests` against one admin, authenticated as one user (or none)."""

    def __init__(self, base_url: str, token: str | None):
        self.base_url = base_url
        self.token = token
        self.session = requests.Session()

    def as_user(self, user: User | None) -> Api:
        return Api(self.base_url, user.token if user else None)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = self.token
        return self.session.request(
            method, self.base_url + path, headers=headers, timeout=30, **kwargs
        )

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


def create_user(
    server: AdminServer, email: str, name: str | None = None, platform_admin: bool = False
) -> User:
    """A new user of `server` with one token, stored as `run_admin.py create-user` stores it
    (and `platform-admin` flags it). In-process: a CLI subprocess per user cost ~1 s of CPU;
    tests/test_cli.py and tests/test_notifications_api.py test those commands themselves.
    The admin must accept the token."""
    email = email.strip().lower()
    token = generate_user_token()
    with make_session_factory(server.engine)() as session:
        stored = StoredUser(email=email, name=name, platform_admin=platform_admin)
        stored.tokens.append(
            UserToken(token_hash=hash_token(token), hint=token_hint(token), label="User Token 1")
        )
        session.add(stored)
        session.commit()
        user = User(stored.id, email, token)
    me = Api(server.base_url, token).get("/api/users/me")
    assert me.status_code == 200, me.text
    assert me.json()["users"][0]["userId"] == user.id
    return user


def error_fields(response: requests.Response) -> dict:
    """The `{"field.path": [messages]}` of a 400 response."""
    return response.json()["error"]["details"].get("fields", {})


def assert_error(response, status: int, code: str) -> dict:
    """`status` with the JSON error envelope carrying `code`; returns the body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["message"] and body["error"]["message"] == body["message"]
    return body


def assert_invalid(response, *fields: str) -> None:
    """400 INVALID_INPUT naming each of `fields` (or a dotted path inside it)."""
    assert_error(response, 400, "INVALID_INPUT")
    named = error_fields(response)
    for name in fields:
        assert any(n == name or n.startswith(name + ".") for n in named), (name, named)


def assert_has(record: dict, expected: dict) -> None:
    """`record` holds every key of `expected` with its value."""
    assert {key: record.get(key) for key in expected} == expected


TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def assert_owned_record(record: dict, kind: str, prefix: str, client_id: str, owner: User) -> None:
    """The key fields of a client-owned record (`kind` e.g. "target", id prefix e.g. "tgt_")."""
    assert record["pKey"] == record["clientId"] == record["parentId"] == client_id
    assert record["sKey"] == record[f"{kind}Id"] and record[f"{kind}Id"].startswith(prefix)
    assert record["userId"] == owner.id
    assert TIMESTAMP.match(record[f"{kind}CreatedAt"]), record
    assert TIMESTAMP.match(record[f"{kind}UpdatedAt"]), record


DROP = object()  # a body override that removes the field


def body_with(base: dict, overrides: dict) -> dict:
    """`base` updated with `overrides`, where a `DROP` value removes the key."""
    body = {**base, **overrides}
    return {key: value for key, value in body.items() if value is not DROP}


def add_member(api: Api, client_id: str, user: User, role: str) -> None:
    """Give `user` the single `role` in `client_id` (as the client's owner `api`)."""
    response = api.post(
        f"/api/clients/{client_id}/members", json={"email": user.email, "roles": [role]}
    )
    assert response.status_code == 201, response.text


# Builders: the smallest valid body of each resource, overridable.

REGION = "us-east-1"


def credential_body(kind: str = "proxy", auth: str = "apiKey", **overrides) -> dict:
    secrets = {
        "apiKey": {"value": "caller-key-0123456789"},
        "bearer": {"token": "target-token-0123456789"},
        "basicAuth": {"username": "svc", "password": "pw-0123456789"},
        "none": None,
    }
    body = {
        "credentialName": f"{kind} {auth}",
        "credentialType": kind,
        "credentialAuthType": auth,
        "credentialRegion": REGION,
        "credentialSecret": secrets[auth],
    }
    if body["credentialSecret"] is None:
        del body["credentialSecret"]
    return {**body, **overrides}


def target_body(**overrides) -> dict:
    return {
        "targetName": "Upstream",
        "targetBaseURL": "http://127.0.0.1:9/base",
        "targetRegion": REGION,
        **overrides,
    }


def create(api: Api, path: str, body: dict, envelope: str) -> dict:
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()[envelope][0]


def new_client(api: Api, name: str = "Acme") -> str:
    return create(api, "/api/clients", {"clientName": name}, "clients")["clientId"]


def proxy_parts(api: Api, client_id: str, region: str = REGION) -> dict:
    """A proxy credential, a target credential and a target in `region`; their ids."""
    base = f"/api/clients/{client_id}"
    proxy_cred = create(
        api, f"{base}/credentials", credential_body(credentialRegion=region), "credentials"
    )
    target_cred = create(
        api,
        f"{base}/credentials",
        credential_body("target", "bearer", credentialRegion=region),
        "credentials",
    )
    target = create(api, f"{base}/targets", target_body(targetRegion=region), "targets")
    return {
        "proxyProxyCredentialId": proxy_cred["sKey"],
        "proxyTargetId": target["sKey"],
        "proxyTargetCredentialId": target_cred["sKey"],
    }


def proxy_body(parts: dict, **overrides) -> dict:
    return {"proxyName": "Upstream proxy", "proxyRegion": REGION, **parts, **overrides}


def new_proxy(api: Api, client_id: str, **overrides) -> dict:
    body = proxy_body(proxy_parts(api, client_id), **overrides)
    return create(api, f"/api/clients/{client_id}/proxies", body, "proxies")


def poll(check, timeout: float = 15):
    """`check()`'s first result that is not None, polled until a deadline (then None)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None or time.monotonic() > deadline:
            return result
        time.sleep(0.05)  # polling real processes for a real change, bounded by the deadline


def answering(status: int, fetch):
    """A check for `poll`: `fetch()`'s response once it has `status`, else None."""

    def check():
        response = fetch()
        return response if response.status_code == status else None

    return check
