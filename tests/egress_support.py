"""Egress test support: an upstream that tells who connected, and pool members in the store."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.pool_proxies import HttpProxy, Listening, ProxyFarm, _splice, read_socks5_address
from tests.pool_support import insert_proxies, proxy_row


@dataclass(frozen=True)
class Seen:
    peer: str  # the address the request arrived from
    method: str
    path: str
    headers: dict[str, str]
    answered: bytes  # the body the upstream sent back
    body_bytes: int  # how much request body arrived


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)

    def _handle(self) -> None:
        received = len(self._read_body())
        body = json.dumps({"path": self.path, "n": len(self.server.owner.seen)}).encode()
        self.server.owner.record(
            Seen(
                self.client_address[0], self.command, self.path, dict(self.headers), body, received
            )
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
    """An HTTP upstream on `address` recording each request's peer address; HTTPS with
    `tls` (certificate and key files, see `tests.pool_proxies.tls_files`)."""

    def __init__(self, address: str, tls: tuple[Path, Path] | None = None):
        self.seen: list[Seen] = []
        self._arrived = threading.Condition()
        self._server = _Server((address, 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.base_url = f"{scheme}://{address}:{self.port}"

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


class AskingHttpProxy(HttpProxy):
    """The test HTTP proxy (mode elite), recording the target of each request line."""

    def __init__(self, address: str, asked: list[str]):
        super().__init__("elite", address)
        self.asked = asked

    async def _connect(self, target: str, reader, writer) -> None:
        self.asked.append(f"CONNECT {target}")
        await super()._connect(target, reader, writer)

    async def _forward(self, method, target, headers, reader, writer) -> None:
        self.asked.append(f"{method} {target}")
        await super()._forward(method, target, headers, reader, writer)


def asking_proxies(farm: ProxyFarm, address: str) -> tuple[Listening, Listening, list[str]]:
    """An HTTP and a SOCKS5 proxy on `address` that record what they were asked to reach:
    `METHOD target` for HTTP, `socks5 ip|name host:port` for SOCKS5."""
    asked: list[str] = []

    async def socks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _, count = await reader.readexactly(2)
            await reader.readexactly(count)
            writer.write(b"\x05\x00")
            _, _, _, kind = await reader.readexactly(4)
            host, port = await read_socks5_address(reader, kind)
            asked.append(f"socks5 {'name' if kind == 3 else 'ip'} {host}:{port}")
            up_reader, up_writer = await asyncio.open_connection(host, port)
            writer.write(b"\x05\x00\x00\x01" + bytes(6))
            await writer.drain()
            await _splice(reader, writer, up_reader, up_writer)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            writer.close()

    http = AskingHttpProxy(address, asked)
    return (
        Listening("asking-http", address, farm._listen(http.handle, address), "http"),
        Listening("asking-socks", address, farm._listen(socks, address), "socks5"),
        asked,
    )
