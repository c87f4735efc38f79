"""Data-plane test support: a real `run_proxy.py` process and proxies set up via the API."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support import REGION, ROOT, AdminServer, create, new_client, stop_process

LISTENING = re.compile(r"listening at 127\.0\.0\.1:(\d+)")
READY = re.compile(r"configuration version -?\d+ loaded")
START_TIMEOUT_S = 60
# The SSRF guard refuses loopback targets; tests allow the recording upstream's address.
# (mitmproxy stalls at start-up if one option is given twice, so this is a keyword.)
ALLOW_LOOPBACK = ("--set", "portcullis_allow_targets=127.0.0.1")


@dataclass
class ProxyServer:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def distinct_free_ports(count: int) -> list[int]:
    """`count` different free ports, for processes launched before any of them listens (the
    kernel may offer the same free port twice until one is bound)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def start_proxy(
    admin_server: AdminServer,
    var_dir: Path,
    *extra_args: str,
    allow_loopback: bool = True,
    port: int | None = None,
) -> ProxyServer:
    """Start `run_proxy.py` on the admin's store; wait until it listens with a config loaded."""
    return wait_started(launch_proxy(admin_server, var_dir, extra_args, allow_loopback, port))


def start_proxies(
    admin_server: AdminServer, var_dirs: list[Path], *extra_args: str
) -> list[ProxyServer]:
    """`start_proxy` for each of `var_dirs` with the same arguments: every process launched
    first, then each waited for, so their start-ups overlap instead of adding up. If one
    fails to start, the others are stopped."""
    ports = distinct_free_ports(len(var_dirs))
    launched = [
        launch_proxy(admin_server, var_dir, extra_args, True, port)
        for var_dir, port in zip(var_dirs, ports, strict=True)
    ]
    started = []
    try:
        for proxy in launched:
            started.append(wait_started(proxy))
    except BaseException:
        for proxy in launched:
            proxy.stop()
        raise
    return started


def launch_proxy(
    admin_server: AdminServer,
    var_dir: Path,
    extra_args: tuple[str, ...],
    allow_loopback: bool = True,
    port: int | None = None,
) -> ProxyServer:
    """`run_proxy.py` launched, not waited for: `wait_started` next (several may start at once)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    log_path = var_dir / "proxy.log"
    port = port or free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "run_proxy.py",
                "--port",
                str(port),
                *(ALLOW_LOOPBACK if allow_loopback else ()),
                *extra_args,
            ],
            cwd=ROOT,
            env={**admin_server.env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ProxyServer(f"http://127.0.0.1:{port}", process, log_path)


def wait_started(proxy: ProxyServer) -> ProxyServer:
    """`proxy` once it listens with a configuration loaded; RuntimeError if it exits first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = proxy.log_text()
        if LISTENING.search(text) and READY.search(text):
            return proxy
        if proxy.process.poll() is not None:
            raise RuntimeError(f"proxy exited early:\n{text}")
        time.sleep(0.05)  # polling for the start-up lines, not standing in for them
    proxy.process.kill()
    raise RuntimeError(f"proxy did not start in {START_TIMEOUT_S}s:\n{proxy.log_text()}")


CALLER_KEY = "caller-key-e2e-0001"
TARGET_TOKEN = "TARGET-SECRET-e2e-0001"
HS_SECRET = "h" * 40
PROPAGATION_TIMEOUT_S = 5


def call(gateway, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, gateway.base_url + path, timeout=15, **kwargs)


def wait_until_served(gateway, path: str, headers: dict, expect=lambda r: r.status_code != 404):
    """Poll until the data plane has picked up a configuration change (bounded)."""
    deadline = time.monotonic() + PROPAGATION_TIMEOUT_S
    while True:
        response = call(gateway, "GET", path, headers=headers)
        if expect(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.05)  # polling a real process for a real change, bounded by the deadline


def logged(api, setup, request_id: str, timeout: float = 10) -> dict:
    """The Requests API's entry for `request_id`, once the batched writer has stored it."""
    path = f"{setup.base}/proxies/{setup.id}/requests/{request_id}"
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(path)
        if response.status_code == 200:
            return response.json()["requests"][0]
        if time.monotonic() > deadline:
            raise AssertionError(f"request {request_id} was not logged: {response.text}")
        time.sleep(0.05)  # polling the store for the writer's batch, bounded by the deadline


def served_setup(api, upstream, gateway) -> Setup:
    """A new client whose proxy forwards to `upstream`, once `gateway` serves it, its log
    settled (the first request is logged, so later counts start from a known point)."""
    made = Setup(api, upstream)
    ready = wait_until_served(gateway, f"/api/{made.id}/", {"X-API-Key": CALLER_KEY})
    logged(api, made, ready.headers["portcullis-request-id"])
    return made


class Setup:
    """One client's proxy toward the recording upstream, built through the Core API."""

    def __init__(self, api, upstream, *, caller=None, target=None, alias=None, **proxy_fields):
        self.api, self.client_id = api, new_client(api)
        base = f"/api/clients/{self.client_id}"
        caller = caller or {
            "credentialAuthType": "apiKey",
            "credentialSecret": {"key": "X-API-Key", "value": CALLER_KEY},
        }
        target = target or {
            "credentialAuthType": "bearer",
            "credentialSecret": {"token": TARGET_TOKEN},
        }
        self.caller = create(api, f"{base}/credentials", self._cred("proxy", caller), "credentials")
        self.target_cred = create(
            api, f"{base}/credentials", self._cred("target", target), "credentials"
        )
        self.target = create(
            api,
            f"{base}/targets",
            {
                "targetName": "echo",
                "targetBaseURL": upstream.base_url + "/base",
                "targetRegion": REGION,
            },
            "targets",
        )
        body = {
            "proxyName": "echo",
            "proxyRegion": REGION,
            "proxyProxyCredentialId": self.caller["sKey"],
            "proxyTargetId": self.target["sKey"],
            "proxyTargetCredentialId": self.target_cred["sKey"],
            **({"proxyAlias": alias} if alias else {}),
            **proxy_fields,
        }
        self.proxy = create(api, f"{base}/proxies", body, "proxies")
        self.id = self.proxy["sKey"]
        self.base = base

    @staticmethod
    def _cred(kind: str, fields: dict) -> dict:
        return {
            "credentialName": kind,
            "credentialType": kind,
            "credentialRegion": REGION,
            **fields,
        }

    def rule(self, scope_path: str, body: dict) -> dict:
        return create(self.api, f"{self.base}/{scope_path}/rules", body, "rules")
