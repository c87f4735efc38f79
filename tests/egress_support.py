"""Egress test support: an upstream that tells who connected, and pool members in the store."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.pool_proxies import Listening
from tests.pool_support import insert_proxies, proxy_row


@dataclass(frozen=True)
class Seen:
    peer: str  # the address the request arrived from
    method: str
    path: str
    headers: dict[str, str]
    answered: bytes  # the body the upstream sent back


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"path": self.path, "n": len(self.server.owner.seen)}).encode()
        self.server.owner.record(
            Seen(self.client_address[0], self.command, self.path, dict(self.headers), body)
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", "echo")
        self.send_header("Content-Length", str(len(body)))
        # A new connection (and a new tunnel through any proxy) for every request.
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: WhoUpstream


class WhoUpstream:
    """An HTTP upstream on `address` recording each request's peer address."""

    def __init__(self, address: str):
        self.seen: list[Seen] = []
        self._arrived = threading.Condition()
        self._server = _Server((address, 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self.base_url = f"http://{address}:{self.port}"

    def record(self, seen: Seen) -> None:
        with self._arrived:
            self.seen.append(seen)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10) -> list[Seen]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.seen) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {len(self.seen)}")
            return list(self.seen)

    def __enter__(self) -> WhoUpstream:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def pool_members(database_url: str, proxies: list[Listening], country: str) -> list[dict]:
    """`proxies` as active, unleased pool members of `country` (never due a check)."""
    rows = [
        proxy_row(
            host=proxy.host,
            port=proxy.port,
            protocol=proxy.protocol,
            status="active",
            country=country,
            anonymity="elite",
            score=0.9,
        )
        for proxy in proxies
    ]
    return insert_proxies(database_url, rows)


def poll(condition, timeout: float = 10, what: str = "condition"):
    """`condition()`'s first value other than None and False within `timeout` seconds (a
    `requests` answer of 4xx/5xx is falsy, so truthiness will not do)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.05)  # polling real processes for a real change, bounded by the deadline
