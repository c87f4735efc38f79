"""Structured access logs: the data plane's JSON line per request (`portcullis_access_log=json`)
and the admin's (`PORTCULLIS_ACCESS_LOG=json`), what log collectors read.

Each data-plane line must carry the Requests API's fields with the same values as the
request log's entry for that request, never a body or a secret, and still be written when
the store refuses the request log's rows; async delivery attempts get theirs too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import requests
from sqlalchemy import text

from tests.async_support import schedule, submit, wait_for_job
from tests.proxy_support import (
    ALLOW_LOOPBACK,
    CALLER_KEY,
    TARGET_TOKEN,
    ProxyServer,
    Setup,
    call,
    free_port,
    logged,
    wait_started,
    wait_until_served,
)
from tests.support import ROOT, AdminServer, Api, create_user, start_admin

LINE_TIMEOUT_S = 15
QUERY_SECRET = "QUERY-SECRET-access-0001"
COOKIE_SECRET = "COOKIE-SECRET-access-0001"
BODY_MARKER = "BODY-MARKER-access-0001"
WRONG_KEY = "WRONG-KEY-access-0001"
# Requests API detail fields the access log leaves out: the bodies, and the seed's storage keys
# (`pKey`/`sKey`/`TTL` repeat `parentId`/`requestId`/`processedAt`'s retention, `processed` is
# always true).
LEFT_OUT = {"requestBody", "responseBody", "pKey", "sKey", "processed", "TTL"}
JSON_ACCESS = ("--set", "portcullis_access_log=json")


def launch_with_stderr(admin_server: AdminServer, var_dir: Path, *extra: str) -> ProxyServer:
    """`run_proxy.py` with its standard error in a file of its own (`stderr.log`)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = var_dir / "proxy.log"
    with log_path.open("wb") as out, (var_dir / "stderr.log").open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "run_proxy.py", "--port", str(port), *ALLOW_LOOPBACK, *extra],
            cwd=ROOT,
            env={**admin_server.env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=err,
        )
    return wait_started(ProxyServer(f"http://127.0.0.1:{port}", process, log_path))


def lines_of(path: Path) -> list[dict]:
    if not path.exists():
        return []
    # At exit, Python's own last-resort output (asyncio's cancelled connections) may follow.
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def line_where(path: Path, match, timeout: float = LINE_TIMEOUT_S) -> dict:
    """The first access log line of `path` for which `match(line)` holds, once written."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in lines_of(path) if match(line)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching line in {path}:\n{lines_of(path)}")
        time.sleep(0.05)  # polling the writer thread's output, bounded by the deadline


def line_for(path: Path, request_id: str) -> dict:
    return line_where(path, lambda line: line.get("requestId") == request_id)


def assert_same_as_request_log(line: dict, entry: dict) -> None:
    """The line holds the Requests API detail's fields, same names and values, bodies out."""
    assert set(line) == {"time", *(set(entry) - LEFT_OUT)}, set(line) ^ set(entry)
    assert {name: line[name] for name in line if name != "time"} == {
        name: value for name, value in entry.items() if name not in LEFT_OUT
    }
    stamp = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert line["time"].endswith("Z") and int(stamp.timestamp() * 1000) == entry["processedAt"]


def test_one_json_line_per_request_with_the_request_logs_fields_and_no_secret(
    admin_server, api, upstream, tmp_path
):
    in_header = Setup(api, upstream)  # bearer TARGET_TOKEN injected
    in_query = Setup(
        api,
        upstream,
        target={
            "credentialAuthType": "apiKey",
            "credentialSecret": {"value": QUERY_SECRET, "query": "key"},
        },
    )
    in_header.rule(f"proxies/{in_header.id}", {"effect": "deny", "pathPattern": "^/v1/private"})
    gateway = launch_with_stderr(admin_server, tmp_path / "proxy", *JSON_ACCESS)
    stderr = tmp_path / "proxy" / "stderr.log"
    try:
        auth = {"X-API-Key": CALLER_KEY, "Cookie": f"session={COOKIE_SECRET}"}
        granted = [
            wait_until_served(gateway, f"/api/{made.id}/status/200?page=2", auth)
            for made in (in_header, in_query)
        ]
        posted = call(
            gateway,
            "POST",
            f"/api/{in_header.id}/v1/items",
            headers=auth,
            data=json.dumps({"note": BODY_MARKER}),
        )
        denied = wait_until_served(
            gateway, f"/api/{in_header.id}/v1/private", auth, lambda r: r.status_code == 403
        )
        wrong = call(gateway, "GET", f"/api/{in_header.id}/x", headers={"X-API-Key": WRONG_KEY})
        answers = [*granted, posted, denied, wrong]
        assert [r.status_code for r in answers] == [200, 200, 200, 403, 401]
        ids = [r.headers["portcullis-request-id"] for r in answers]
        setups = [in_header, in_query, in_header, in_header, in_header]
        for request_id, made in zip(ids, setups, strict=True):
            assert_same_as_request_log(line_for(stderr, request_id), logged(api, made, request_id))
        # While serving, every line of standard error is one JSON object.
        serving = stderr.read_text()
        assert all(line.startswith("{") for line in serving.splitlines()), serving
    finally:
        gateway.stop()

    lines = {line["requestId"]: line for line in lines_of(stderr)}
    assert lines[ids[0]]["requestHeaders"]["x-api-key"] == "[REDACTED]"
    assert lines[ids[0]]["requestHeaders"]["cookie"] == "[REDACTED]"
    assert lines[ids[3]]["proxyData"]["proxyCode"] == "proxy-access-denied"
    assert lines[ids[3]]["statusCode"] == 403
    assert lines[ids[4]]["statusCode"] == 401
    assert lines[ids[2]]["method"] == "POST" and lines[ids[2]]["path"] == "/v1/items"
    written = stderr.read_text()
    for secret in (CALLER_KEY, TARGET_TOKEN, QUERY_SECRET, COOKIE_SECRET, WRONG_KEY):
        assert secret not in written, secret
    assert BODY_MARKER not in written, "bodies stay out of the access log"


def test_off_by_default(gateway, setup):
    """The shared gateway runs with the defaults: no access log line in its output."""
    answer = call(gateway, "GET", f"/api/{setup.id}/status/200", headers={"X-API-Key": CALLER_KEY})
    request_id = answer.headers["portcullis-request-id"]
    logged(setup.api, setup, request_id)  # the writer has handled it
    assert '"requestId"' not in gateway.log_text()


def test_async_attempts_are_logged_and_lines_survive_a_store_that_refuses_the_rows(
    upstream, tmp_path
):
    """Its own store: the test breaks the request log's table once the async part is done."""
    admin = start_admin(tmp_path / "admin")
    access_file = tmp_path / "access.jsonl"
    try:
        api = Api(admin.base_url, create_user(admin, "access@example.test").token)
        made = Setup(api, upstream)
        gateway = launch_with_stderr(
            admin,
            tmp_path / "proxy",
            *JSON_ACCESS,
            "--set",
            f"portcullis_access_log_file={access_file}",
            *schedule(),
        )
        try:
            wait_until_served(gateway, f"/api/{made.id}/", {"X-API-Key": CALLER_KEY})
            accepted = submit(gateway, made, "/status/200", data=BODY_MARKER)
            assert accepted.status_code == 202, accepted.text
            job_id = accepted.headers["portcullis-request-id"]
            wait_for_job(api, made, job_id, lambda job: job["status"] == "succeeded")
            attempt = line_where(
                access_file, lambda line: line["proxyData"].get("asyncRequestId") == job_id
            )
            assert attempt["proxyData"]["attempt"] == 1 and attempt["statusCode"] == 200
            queued = line_where(
                access_file,
                lambda line: line["requestId"] == job_id and "attempt" not in line["proxyData"],
            )
            assert queued["statusCode"] == 202 and queued["proxyData"]["async"] is True
            assert_same_as_request_log(attempt, logged(api, made, attempt["requestId"]))

            with admin.engine.begin() as connection:
                connection.execute(text("ALTER TABLE request_logs RENAME TO request_logs_away"))
            refused = call(
                gateway, "GET", f"/api/{made.id}/status/200", headers={"X-API-Key": CALLER_KEY}
            )
            assert refused.status_code == 200
            request_id = refused.headers["portcullis-request-id"]
            line = line_for(access_file, request_id)
            assert line["statusCode"] == 200 and line["proxyData"]["proxyCode"] == (
                "proxy-access-granted"
            )
        finally:
            gateway.stop()
        assert "the store refused a write" in gateway.log_text()
        assert [line["requestId"] for line in lines_of(access_file)].count(request_id) == 1
        written = access_file.read_text()
        assert CALLER_KEY not in written and TARGET_TOKEN not in written
        assert BODY_MARKER not in written
        assert not (tmp_path / "proxy" / "stderr.log").read_text().strip().startswith("{")
        # The admin's access log without PORTCULLIS_ACCESS_LOG: its text lines, as before.
        assert "INFO portcullis.access GET /api/users/me 200" in admin.log_text()
    finally:
        admin.stop()


def test_admin_json_access_lines(tmp_path):
    admin = start_admin(tmp_path / "admin", PORTCULLIS_ACCESS_LOG="json")
    try:
        user = create_user(admin, "json-log@example.test")
        base = admin.base_url
        me = requests.get(
            f"{base}/api/users/me?token=QUERY-SECRET-admin",
            headers={"Authorization": f"Bearer {user.token}"},
            timeout=10,
        )
        anonymous = requests.get(f"{base}/api/users/me", timeout=10)
        invite = requests.get(f"{base}/api/invites/pci_INVITESECRET0001", timeout=10)
        assert (me.status_code, anonymous.status_code) == (200, 401)

        def json_lines() -> list[dict]:
            return [
                json.loads(line) for line in admin.log_text().splitlines() if line.startswith("{")
            ]

        deadline = time.monotonic() + LINE_TIMEOUT_S
        while len([ln for ln in json_lines() if ln["path"] == "/api/users/me"]) < 3:
            assert time.monotonic() < deadline, admin.log_text()
            time.sleep(0.05)  # polling the admin's log for its lines, bounded
    finally:
        admin.stop()
    lines = json_lines()
    mine = [ln for ln in lines if ln["path"] == "/api/users/me"]
    # create_user checked its token once; then the two requests above
    assert [(ln["status"], ln.get("userId")) for ln in mine] == [
        (200, user.id),
        (200, user.id),
        (401, None),
    ]
    for line in mine:
        assert set(line) - {"userId"} == {
            "time", "method", "path", "status", "durationMs", "remote",
        }  # fmt: skip
        assert line["method"] == "GET" and line["remote"] == "127.0.0.1"
        assert line["durationMs"] >= 0 and line["time"].endswith("Z")
        datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    invites = [ln for ln in lines if ln["path"].startswith("/api/invites/")]
    assert invites and invites[0]["status"] == invite.status_code
    text_log = admin.log_text()
    for secret in (user.token, "QUERY-SECRET-admin", "pci_INVITESECRET0001"):
        assert secret not in text_log, secret
    assert "INFO portcullis.access" not in text_log, "JSON replaces the text lines"


def test_admin_refuses_an_unknown_access_log_format(tmp_path):
    try:
        start_admin(tmp_path / "admin", PORTCULLIS_ACCESS_LOG="xml")
    except RuntimeError as exc:
        assert "PORTCULLIS_ACCESS_LOG must be one of text, json, not 'xml'" in str(exc)
    else:
        raise AssertionError("the admin started with PORTCULLIS_ACCESS_LOG=xml")
