"""Starting the real data plane (`run_proxy.py`, i.e. mitmdump with the addons) for tests."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT, AdminServer

LISTENING = re.compile(r"listening at 127\.0\.0\.1:(\d+)")
READY = re.compile(r"configuration version -?\d+ loaded")
START_TIMEOUT_S = 60


@dataclass
class ProxyServer:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_proxy(admin_server: AdminServer, var_dir: Path, *extra_args: str) -> ProxyServer:
    """Start `run_proxy.py` on the admin's store; wait until it listens with a config loaded."""
    var_dir.mkdir(parents=True, exist_ok=True)
    log_path = var_dir / "proxy.log"
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "run_proxy.py", "--port", str(port), *extra_args],
            cwd=ROOT,
            env={**admin_server.env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if LISTENING.search(text) and READY.search(text):
            return ProxyServer(f"http://127.0.0.1:{port}", process, log_path)
        if process.poll() is not None:
            raise RuntimeError(f"proxy exited early:\n{text}")
        time.sleep(0.05)  # polling for the start-up lines, not standing in for them
    process.kill()
    raise RuntimeError(f"proxy did not start in {START_TIMEOUT_S}s:\n{log_path.read_text()}")
