"""A real `redis-server` for tests: 127.0.0.1, a free port, no persistence, its own temp dir.

It can be stopped and started again on the same port, as an operator's restart would.
`make redis` installs Debian's redis-server; tests that need it fail (not skip) without it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.proxy_support import free_port
from tests.support import stop_process

START_TIMEOUT_S = 15
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """One redis-server process; `url` stays the same across `stop()` and `start()`."""

    def __init__(self, directory: Path, port: int | None = None):
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError("redis-server is missing: run `make redis`")
        log = (self.directory / "redis.log").open("ab")
        command = [
            REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.directory), "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited early:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log_text()}")
            time.sleep(0.05)  # polling the new process until it answers, bounded
        return self

    def answers(self) -> bool:
        """Whether a PING on a fresh connection gets PONG."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def log_text(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""
