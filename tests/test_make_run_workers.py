"""`make run WORKERS=2`, run through make as a user would: two data-plane workers behind HAProxy.

On a fresh store and free ports: requests through the balancer port reach both workers
(HAProxy's status page counts each worker's answers), the request log shows the
caller's address (HAProxy's X-Forwarded-For; what the caller wrote there is dropped),
and a worker killed with SIGKILL costs no request: the balancer keeps answering 200
through the other until the worker is restarted and takes traffic again.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bench.balancer import consecutive_free_ports
from tests.proxy_support import CALLER_KEY, Setup, free_port, logged
from tests.support import ROOT, Api, admin_env
from tools.run_gateway import (
    TEMPLATE,
    Layout,
    haproxy_binary,
    haproxy_config,
    with_trusted_balancer,
)

START_TIMEOUT_S = 180  # make: migrations on a fresh store, then four processes
RECOVERY_TIMEOUT_S = 60  # worker restart (backoff 1 s) and HAProxy's rise checks
STOP_TIMEOUT_S = 20
TOKEN = re.compile(r"^\[admin\]\s+(u-[\w-]+)\s*$", re.MULTILINE)
STARTED = re.compile(r"run_gateway\.py: (worker\d) (?:started|restarted) \(pid (\d+)\)")


@dataclass
class MakeRun:
    process: subprocess.Popen
    log_path: Path
    proxy_url: str
    admin_url: str
    stats_url: str

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> dict[str, int]:
        """Each worker's current pid, as run_gateway.py announced it."""
        return {name: int(pid) for name, pid in STARTED.findall(self.output())}

    def stats(self) -> dict[str, dict]:
        """HAProxy's status page as CSV: worker name → its row (status, hrsp_2xx, ...)."""
        text = requests.get(self.stats_url + "/;csv", timeout=5).text.lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {r["svname"]: r for r in rows if r["pxname"] == "portcullis_workers"}

    def answers_2xx(self, worker: str) -> int:
        return int(self.stats()[worker]["hrsp_2xx"] or 0)

    def wait_for(self, check, what: str, timeout: float = START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"make run exited while waiting for {what}:\n{self.output()}")
            try:
                found = check()
            except requests.RequestException:
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.output()[-5000:]}")
            time.sleep(0.1)  # polling real processes for a real change, bounded by the deadline


def start_make_run(tmp_path: Path, proxy_args: str) -> MakeRun:
    """`make run WORKERS=2 PROXY_ARGS=...` in its own process group, on free ports and the
    fresh store of `tmp_path`."""
    env = admin_env(tmp_path / "var")
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # as from a user's shell, not a sub-make
        env.pop(name, None)
    proxy_port, admin_port, stats_port = free_port(), free_port(), free_port()
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                "make", "run", "WORKERS=2", f"PROXY_PORT={proxy_port}",
                f"ADMIN_PORT={admin_port}", f"WORKER_PORT_BASE={consecutive_free_ports(2)}",
                f"STATS_PORT={stats_port}",
                f"PROXY_ARGS={proxy_args}",
            ],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return MakeRun(
        process,
        log_path,
        f"http://127.0.0.1:{proxy_port}",
        f"http://127.0.0.1:{admin_port}",
        f"http://127.0.0.1:{stats_port}",
    )


def stop_group(process: subprocess.Popen) -> None:
    """TERM to the whole group (Ctrl-C's counterpart), KILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def make_run(tmp_path):
    run = start_make_run(tmp_path, "--set portcullis_allow_targets=127.0.0.1")
    try:
        yield run
    finally:
        stop_group(run.process)


def both_up(run: MakeRun) -> bool:
    stats = run.stats()
    return all(stats.get(w, {}).get("status") == "UP" for w in ("worker1", "worker2"))


def test_two_workers_behind_haproxy(make_run, upstream):
    run = make_run
    run.wait_for(lambda: TOKEN.search(run.output()), "the first user's token")
    run.wait_for(lambda: both_up(run), "HAProxy to see both workers healthy")
    api = Api(run.admin_url, TOKEN.search(run.output()).group(1))
    setup = Setup(api, upstream)
    path = f"{run.proxy_url}/api/{setup.id}/items"
    headers = {"X-API-Key": CALLER_KEY}

    def send(**extra) -> requests.Response:
        return requests.get(path, headers={**headers, **extra}, timeout=15)

    # Both workers pick the new proxy up from the store; then both answer through the balancer.
    def both_served() -> bool:
        send()
        return run.answers_2xx("worker1") > 0 and run.answers_2xx("worker2") > 0

    run.wait_for(both_served, "requests through the balancer to reach both workers", 30)
    assert send().status_code == 200
    assert set(run.workers()) == {"worker1", "worker2"}

    # The request log names the caller, not the balancer; what the caller wrote is dropped.
    spoofed = send(**{"X-Forwarded-For": "203.0.113.7"})
    assert spoofed.status_code == 200
    entry = logged(api, setup, spoofed.headers["portcullis-request-id"])
    assert entry["proxyData"]["apiHeaders"]["x-forwarded-for"] == "127.0.0.1"

    # SIGKILL one worker: not one request fails, the other answers them all, until the
    # killed one is restarted and answers again.
    killed = run.workers()["worker1"]
    served_before = {w: run.answers_2xx(w) for w in ("worker1", "worker2")}
    os.kill(killed, signal.SIGKILL)
    statuses, during_outage = [], []

    def recovered() -> bool:
        restarted = run.workers()["worker1"] != killed
        statuses.append(send().status_code)
        if not restarted:
            during_outage.append(statuses[-1])
        return restarted and run.answers_2xx("worker1") > served_before["worker1"]

    run.wait_for(recovered, "the killed worker to be restarted and serve", RECOVERY_TIMEOUT_S)
    assert during_outage and set(statuses) == {200}, statuses
    assert run.answers_2xx("worker2") > served_before["worker2"]
    assert f"worker1 (pid {killed}) exited" in run.output()
    assert requests.get(run.admin_url + "/health", timeout=5).status_code == 200


def test_a_bad_worker_option_stops_everything(tmp_path):
    """A worker that cannot start is not restarted in a loop: make run ends, nothing left."""
    run = start_make_run(tmp_path, "--no-such-flag")
    try:
        code = run.process.wait(timeout=START_TIMEOUT_S)
        assert code != 0
        assert "before it listened; stopping" in run.output()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while group_alive(run.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling for the children's exit, bounded by the deadline
        assert not group_alive(run.process.pid), "processes of make run outlived it"
    finally:
        stop_group(run.process)


@pytest.mark.parametrize(
    ("given", "trusted"),
    [
        ([], "127.0.0.2/32"),
        (["--set", "portcullis_trusted_proxies=10.0.0.0/8"], "127.0.0.2/32,10.0.0.0/8"),
        (["--set=portcullis_trusted_proxies=10.1.1.1, 10.2.2.2"], "127.0.0.2/32,10.1.1.1,10.2.2.2"),
    ],
)
def test_workers_trust_the_balancer_and_the_users_proxies(given, trusted):
    """Each worker trusts the balancer's source, merged with the user's own trusted proxies
    into one option (mitmproxy stalls on an option given twice); other options untouched."""
    other = ["--set", "portcullis_allow_targets=127.0.0.1", "-q"]
    args = with_trusted_balancer([*other[:2], *given, *other[2:]], "127.0.0.2")
    assert args == [*other, "--set", f"portcullis_trusted_proxies={trusted}"]


@pytest.mark.parametrize("workers", [2, 5])
def test_generated_haproxy_config_is_valid(tmp_path, workers):
    """The config written from deploy/haproxy.cfg.template passes `haproxy -c`, one server per
    worker, each health-checked; so does the multi-host sample."""
    layout = Layout(workers=workers, worker_port_base=18081)
    config = haproxy_config(layout, TEMPLATE.read_text())
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    for checked in (path, ROOT / "deploy" / "haproxy-multihost.cfg"):
        result = subprocess.run(
            [haproxy_binary(), "-c", "-f", str(checked)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
    servers = re.findall(r"^\s+server worker(\d+) 127\.0\.0\.1:(\d+)$", config, re.MULTILINE)
    assert servers == [(str(n + 1), str(18081 + n)) for n in range(workers)]
    assert "uri /_portcullis/health" in config and "source 127.0.0.2" in config
