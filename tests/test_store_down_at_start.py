"""A data plane started while its store is unreachable keeps trying, and serves once the
store answers: no restart needed. Until then it forwards nothing and its health check
answers 503 CONFIG_NOT_LOADED.

On SQLite the store is not there yet (the admin that makes it starts later); on
PostgreSQL the database refuses connections, then takes them again.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from tests import stores
from tests.async_support import AUTH, user_api
from tests.proxy_support import ALLOW_LOOPBACK, LISTENING, ProxyServer, Setup, call, free_port
from tests.support import ROOT, admin_env, answering, poll, start_admin, stop_process

HEALTH = "/_portcullis/health"
DEADLINE_S = 30


def start_unready_proxy(env: dict, var_dir: Path) -> ProxyServer:
    """`run_proxy.py` waited for until it listens only (its configuration cannot load yet)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    log_path = var_dir / "proxy.log"
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "run_proxy.py", "--port", str(port), *ALLOW_LOOPBACK],
            cwd=ROOT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    proxy = ProxyServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + DEADLINE_S
    while not LISTENING.search(proxy.log_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise AssertionError(f"the proxy did not come up:\n{proxy.log_text()}")
        time.sleep(0.05)  # polling for the start-up line, bounded
    return proxy


def health(proxy: ProxyServer) -> requests.Response:
    return call(proxy, "GET", HEALTH)


def test_a_data_plane_started_without_its_store_serves_once_the_store_answers(tmp_path, upstream):
    store_dir = tmp_path / "store"
    if stores.on_postgresql():
        admin = start_admin(store_dir)
        stores.server().set_reachable(admin.database_url, False)
        env = admin.env
    else:
        admin = None
        env = admin_env(store_dir)  # the SQLite file the admin will make
    proxy = start_unready_proxy(env, tmp_path / "proxy")
    try:
        down = poll(answering(503, lambda: health(proxy)), DEADLINE_S)
        assert down is not None, "the data plane did not answer its health check"
        body = down.json()
        assert body["error"]["code"] == "CONFIG_NOT_LOADED", body
        assert body["store"]["reachable"] is False and body["configVersion"] is None
        marker = uuid.uuid4().hex
        refused = call(proxy, "GET", f"/api/{marker}/status/200", headers=AUTH)
        assert refused.status_code == 503, refused.text  # not "unknown proxy": it cannot know
        assert refused.json()["error"]["code"] == "CONFIG_NOT_LOADED"
        assert refused.headers["requestrocket-proxy-code"] == "gateway-error"
        assert not any(marker in r.path for r in upstream.received)

        if admin is None:
            admin = start_admin(store_dir)
        else:
            stores.server().set_reachable(admin.database_url, True)
        made = Setup(user_api(admin), upstream)

        back = poll(answering(200, lambda: health(proxy)), DEADLINE_S)
        assert back is not None, health(proxy).text
        path = f"/api/{made.id}/status/200"
        served = poll(answering(200, lambda: call(proxy, "GET", path, headers=AUTH)), DEADLINE_S)
        assert served is not None, "the configuration made after the store came back is not served"
        log = proxy.log_text()
        assert log.count("configuration not loaded: the store is unreachable") == 1, log
        assert log.count("could not claim async jobs") <= 1, "one traceback per outage"
    finally:
        proxy.stop()
        if admin is not None:
            if stores.on_postgresql():
                stores.server().set_reachable(admin.database_url, True)
            admin.stop()
