"""What the two health answers say, and that the data plane's never runs the pipeline.

- The admin's `GET /health` names the store's kind (never its URL) and answers
  503, same shape, when the store cannot be read.
- The data plane's `GET /_portcullis/health` on the proxy port answers from
  memory: the configuration version the process serves, the store's kind and
  whether its last poll reached it, the region. It never forwards, never
  writes a request log entry or telemetry, and other paths and methods under
  `/_portcullis/` answer JSON 404/405.
- mitmproxy's own `~/.mitmproxy/config.yaml` sets gateway options.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from models import RequestLog
from models.store import make_engine, make_session_factory
from models.telemetry import MetricPoint, TelemetryCounter
from tests.async_support import user_api
from tests.proxy_support import CALLER_KEY, Setup, call, logged, start_proxy, wait_until_served
from tests.support import (
    REGION,
    AdminServer,
    Api,
    answering,
    assert_error,
    create,
    credential_body,
    poll,
    start_admin,
)

HEALTH = "/_portcullis/health"
AUTH = {"X-API-Key": CALLER_KEY}


def database_url(server: AdminServer) -> str:
    return server.env.get("DATABASE_URL") or f"sqlite:///{server.database_path}"


def expected_kind(server: AdminServer) -> str:
    """The store kind the admin should report, from the URL it was started with."""
    return make_url(database_url(server)).get_backend_name()


def admin_health(server: AdminServer) -> requests.Response:
    return Api(server.base_url, None).get("/health")


def assert_admin_shape(body: dict, server: AdminServer, status: str) -> None:
    assert set(body) == {"status", "database", "store", "version", "configVersion"}, body
    assert body["store"] == {"kind": expected_kind(server), "status": status}
    assert body["database"] == status


def assert_no_store_address(text: str, server: AdminServer) -> None:
    url = make_url(database_url(server))
    for secret in (str(url), url.render_as_string(hide_password=False), url.password, url.host):
        assert not secret or secret not in text
    assert str(server.var_dir) not in text


def test_admin_health_names_the_store_kind_never_its_address(admin_server):
    response = admin_health(admin_server)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_admin_shape(body, admin_server, "ok")
    assert body["status"] == "ok" and isinstance(body["configVersion"], int)
    assert_no_store_address(response.text, admin_server)


def test_data_plane_health_serves_the_admins_config_version(admin_server, api, client_id, gateway):
    before = admin_health(admin_server).json()["configVersion"]
    create(api, f"/api/clients/{client_id}/credentials", credential_body(), "credentials")
    version = admin_health(admin_server).json()["configVersion"]
    assert version > before

    def current():
        response = call(gateway, "GET", HEALTH)
        return response if response.json()["configVersion"] == version else None

    response = poll(current)
    assert response is not None, "the data plane never reported the admin's configuration version"
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "ok" and body["region"] is None
    store = body["store"]
    assert store["kind"] == expected_kind(admin_server) and store["reachable"] is True
    assert 0 <= store["lastSnapshotAgeSeconds"] < 30
    assert "error" not in body
    assert_no_store_address(response.text, admin_server)

    head = call(gateway, "HEAD", HEALTH)
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", HEALTH, 405, "METHOD_NOT_ALLOWED"),
        ("DELETE", HEALTH, 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/_portcullis/unknown", 404, "NOT_FOUND"),
        ("GET", "/_portcullis", 404, "NOT_FOUND"),
        ("POST", "/_portcullis/api/x", 404, "NOT_FOUND"),
    ],
)
def test_other_requests_under_the_reserved_prefix_are_refused_in_json(
    gateway, method, path, status, code
):
    response = call(gateway, method, path, headers=AUTH, data=b'{"a": 1}')
    body = assert_error(response, status, code)
    assert HEALTH in body["message"]
    if status == 405:
        assert response.headers["Allow"] == "GET, HEAD"


def test_a_large_body_to_the_reserved_prefix_is_drained_and_refused(gateway):
    """Larger than the data plane's streaming threshold (1 MiB): drained, never held or sent."""
    response = call(gateway, "POST", HEALTH, data=b"x" * (3 * 1024 * 1024))
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    again = call(gateway, "GET", HEALTH)  # the process is fine afterwards
    assert again.status_code == 200


@pytest.fixture
def lone_proxy(tmp_path):
    """An admin and a data plane on a store of their own: every row in it is this test's."""
    server = start_admin(tmp_path / "admin")
    proxy = None
    try:
        proxy = start_proxy(
            server, tmp_path / "proxy", "--set", "portcullis_health_stale_seconds=1"
        )
        yield server, proxy
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()


def test_health_checks_never_reach_the_pipeline(lone_proxy, upstream):
    """No request log entry, no telemetry, nothing at any upstream, for any reserved-path call:
    only the one real request sent after them is recorded."""
    server, gateway = lone_proxy
    api = user_api(server)
    made = Setup(api, upstream)
    wait_until_served(gateway, "/_portcullis/health", {}, lambda r: r.status_code == 200)
    for method, path in [("GET", HEALTH), ("HEAD", HEALTH), ("POST", HEALTH)] * 5 + [
        ("GET", f"/_portcullis/api/{made.id}/"),
        ("GET", f"{HEALTH}?proxy={made.id}"),
    ]:
        assert call(gateway, method, path, headers=AUTH).status_code in (200, 404, 405)

    sentinel = wait_until_served(gateway, f"/api/{made.id}/sentinel", AUTH)
    assert sentinel.status_code == 200, sentinel.text
    logged(api, made, sentinel.headers["portcullis-request-id"])  # the writer got this far

    engine = make_engine(database_url(server))
    sessions = make_session_factory(engine)
    try:

        def telemetry_written() -> int | None:
            with sessions() as session:
                return session.scalar(
                    select(func.sum(TelemetryCounter.count)).where(
                        TelemetryCounter.leg == "proxy", TelemetryCounter.dimension == "code"
                    )
                )

        assert poll(telemetry_written) == 1
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(RequestLog)) == 1
            owners = {
                *session.scalars(select(RequestLog.proxy_id)),
                *session.scalars(select(TelemetryCounter.proxy_id)),
                *session.scalars(select(MetricPoint.proxy_id)),
            }
            assert owners == {made.id}
    finally:
        engine.dispose()
    assert not any("_portcullis" in path for path in upstream.started)
    assert not any("_portcullis" in r.path + r.query for r in upstream.received)


def clobber(path: Path) -> None:
    """Overwrite a file in place (same inode, so open connections see it too)."""
    if path.exists():
        with path.open("r+b") as f:
            f.write(b"\xff" * max(path.stat().st_size, 4096))


@pytest.mark.sqlite_only
def test_an_unreadable_store_turns_both_health_answers_to_503(lone_proxy):
    """Files overwritten under running processes (root can read any directory, so the store
    is made unreadable by its content, not its permissions)."""
    server, gateway = lone_proxy
    assert admin_health(server).status_code == 200
    assert call(gateway, "GET", HEALTH).status_code == 200
    for name in ("portcullis.db", "portcullis.db-wal", "portcullis.db-shm"):
        clobber(server.var_dir / name)

    response = poll(answering(503, lambda: admin_health(server)))
    assert response is not None, "the admin kept answering 200 on a broken store"
    body = response.json()
    assert_admin_shape(body, server, "unreachable")
    assert body["status"] == "degraded" and body["configVersion"] is None

    data_plane = poll(answering(503, lambda: call(gateway, "GET", HEALTH)))
    assert data_plane is not None, "the data plane kept answering 200 on a broken store"
    body = data_plane.json()
    assert body["status"] == "unavailable"
    assert body["error"]["code"] == "STORE_UNREACHABLE"
    assert body["store"]["reachable"] is False and body["store"]["kind"] == "sqlite"
    assert body["store"]["lastSnapshotAgeSeconds"] > 1
    assert isinstance(body["configVersion"], int)  # the last good snapshot is still served


def test_mitmproxy_config_yaml_sets_gateway_options(admin_server, api, upstream, tmp_path):
    """`~/.mitmproxy/config.yaml` of the user running `run_proxy.py` (HOME moved here).

    mitmproxy reads it after the command line, so it also wins over `--set` (and
    `--region`); run_proxy.py says so when both name an option.
    """
    home = tmp_path / "home"
    (home / ".mitmproxy").mkdir(parents=True)
    config_file = home / ".mitmproxy" / "config.yaml"
    config_file.write_text("portcullis_region: eu-west-1\n")
    server = dataclasses.replace(admin_server, env={**admin_server.env, "HOME": str(home)})
    made = Setup(api, upstream)  # a proxy of REGION, not eu-west-1
    assert REGION != "eu-west-1"

    proxy = start_proxy(server, tmp_path / "proxy")
    try:
        response = wait_until_served(proxy, f"/api/{made.id}/", AUTH)
        assert_error(response, 421, "WRONG_REGION")
        assert call(proxy, "GET", HEALTH).json()["region"] == "eu-west-1"
        assert "overrides --set" not in proxy.log_text()
    finally:
        proxy.stop()

    overridden = start_proxy(server, tmp_path / "overridden", "--region", REGION)
    try:
        assert call(overridden, "GET", HEALTH).json()["region"] == "eu-west-1"
        assert f"{config_file} sets portcullis_region, which overrides --set" in (
            overridden.log_text()
        )
    finally:
        overridden.stop()
