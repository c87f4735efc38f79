"""What the benchmarks start: processes pinned to cores, logged, and stopped at the end.

Shared by bench/run.py (`make bench`), bench/streaming.py and tools/screenshots.py.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.configure import LIMITS_ENV, CoreApi

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DATA_PLANE_CORE, LOAD_CORE = "0", "1"
START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(core: str, *command) -> list[str]:
    return ["taskset", "-c", core, *map(str, command)]


def wait_for(check, what: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def answers(url: str, headers: dict | None = None) -> bool:
    try:
        return requests.get(url, headers=headers, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


class Processes:
    """Everything the benchmark starts, stopped at the end whatever happens."""

    def __init__(self, var_dir: Path):
        self.var_dir = var_dir
        self.env = {**os.environ, "PORTCULLIS_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"}
        self.env.update(LIMITS_ENV)  # rate limits far above what the bench sends
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log = (self.var_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=log
        )
        self.started.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.var_dir / f"{name}.log").read_text(errors="replace")

    def stop_one(self, process: subprocess.Popen) -> None:
        """Stop one of the started processes (terminate, then kill after 10 s)."""
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.started.remove(process)

    def stop(self) -> None:
        for process in self.started:
            process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def start_gateway(
    processes: Processes,
    name: str,
    port: int,
    *extra: str,
    core: str = DATA_PLANE_CORE,
    env: dict | None = None,
) -> subprocess.Popen:
    return processes.start(
        name,
        pinned(
            core, sys.executable, "run_proxy.py", "--port", port, "-q",
            "--set", "portcullis_allow_targets=127.0.0.1", *extra,
        ),
        env,
    )  # fmt: skip


def start_admin(processes: Processes, name: str, port: int, env: dict | None = None) -> CoreApi:
    """`run_admin.py serve` on `port`; the Core API as the user it creates on a fresh store."""
    processes.start(name, [sys.executable, "run_admin.py", "serve", "--port", str(port)], env)
    wait_for(lambda: "listening on" in processes.log(name), f"the admin ({name})")
    token = re.search(r"\b(u-[\w-]+)", processes.log(name)).group(1)
    return CoreApi(f"http://127.0.0.1:{port}", token)
