"""A real upstream for end-to-end tests: an HTTP/1.1 server on 127.0.0.1 that records requests."""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

HELD_MAX_S = 60


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        self.server.upstream.record_start(path)
        received = Received(
            self.command, path, query, list(self.headers.items()), self._read_body()
        )
        self.server.upstream.record(received)
        parts = [p for p in path.split("/") if p]
        tail = parts[-2:] if len(parts) >= 2 else [*parts, ""][:2]
        if tail[0] == "status" and tail[1].isdigit():
            # ?header=Name:value (repeatable) adds response headers, e.g. Retry-After, Location;
            # ?delay_ms=N answers after N ms.
            params = parse_qs(query)
            extra = [item.split(":", 1) for item in params.get("header", [])]
            if "delay_ms" in params:
                time.sleep(int(params["delay_ms"][0]) / 1000)  # the upstream being slow, on purpose
            if "held" in params:  # ?held=1 answers once the test opens `upstream.gate`
                self.server.upstream.gate.wait(HELD_MAX_S)
            code = int(tail[1])
            body = b"" if code in (204, 304) else json.dumps({"status": code}).encode()
            return self._send(code, body, "application/json", extra)
        if len(parts) >= 3 and parts[-3] == "flaky" and parts[-1].isdigit():
            return self._flaky(parts[-2], int(parts[-1]), parse_qs(query))
        if tail[0] == "delay" and tail[1].isdigit():
            time.sleep(int(tail[1]) / 1000)  # the upstream being slow, on purpose
            return self._send(200, b'{"delayed": true}', "application/json")
        if tail[0] == "tokens" and tail[1].isdigit():
            # An AI API's answer: N tokens used, in the body and in an `x-tokens` header.
            body = json.dumps({"usage": {"total_tokens": int(tail[1])}}).encode()
            return self._send(200, body, "application/json", [("x-tokens", tail[1])])
        if tail[0] == "mirror":
            # `/mirror/{any}`: the request body comes back as the response body, with
            # ?content_type= (default application/json) and ?encoding=gzip|deflate (compressed
            # so) or any other value (sent as that Content-Encoding, uncompressed).
            params = parse_qs(query)
            content_type = params.get("content_type", ["application/json"])[0]
            extra, body = [], received.body
            if "encoding" in params:
                coding = params["encoding"][0]
                if coding == "gzip":
                    body = gzip.compress(body)
                elif coding == "deflate":
                    body = zlib.compress(body)
                extra.append(("Content-Encoding", coding))
            return self._send(200, body, content_type, extra)
        if tail[0] == "bytes" and tail[1].isdigit():
            return self._send(200, b"x" * int(tail[1]), "application/octet-stream")
        if tail[0] == "chunked" and tail[1].isdigit():
            return self._send_chunked(int(tail[1]))
        if parts and parts[-1] == "jwks.json":
            return self._send(
                200, json.dumps(self.server.upstream.jwks).encode(), "application/json"
            )
        echo = {
            "method": received.method,
            "path": received.path,
            "query": received.query,
            "headers": {k.lower(): v for k, v in received.headers},
            "body": received.body.decode("utf-8", "replace"),
        }
        self._send(200, json.dumps(echo).encode(), "application/json")

    def _flaky(self, key: str, failures: int, params: dict) -> None:
        """`/flaky/{key}/{n}`: the first n requests for key answer ?status= (503), then 200.

        ?delay_ms=N delays every answer; ?header=Name:value adds headers to the failures.
        """
        seen = self.server.upstream.count(key)
        if "delay_ms" in params:
            time.sleep(int(params["delay_ms"][0]) / 1000)  # the upstream being slow, on purpose
        if seen <= failures:
            status = int(params.get("status", ["503"])[0])
            extra = [item.split(":", 1) for item in params.get("header", [])]
            return self._send(
                status, json.dumps({"attempt": seen}).encode(), "application/json", extra
            )
        self._send(
            200, json.dumps({"attempt": seen, "delivered": True}).encode(), "application/json"
        )

    def _send(self, status: int, body: bytes, content_type: str, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_chunked(self, total: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        remaining = total
        while remaining > 0:
            size = min(64 * 1024, remaining)
            self.wfile.write(f"{size:x}\r\n".encode() + b"x" * size + b"\r\n")
            remaining -= size
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    upstream: RecordingUpstream


class RecordingUpstream:
    """`with RecordingUpstream() as up:` → `up.base_url`, `up.received`, `up.wait_for(n)`."""

    def __init__(self):
        self.received: list[Received] = []
        self.started: list[str] = []  # paths whose request head arrived, in order
        self.counts: dict[str, int] = {}  # requests per /flaky/ key
        self.jwks: dict = {"keys": []}
        # `?held=1` answers wait for this (open unless a test closes it; bounded by HELD_MAX_S).
        self.gate = threading.Event()
        self.gate.set()
        self._arrived = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.upstream = self
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    def count(self, key: str) -> int:
        """Count one more request for `key`; how many there have been, this one included."""
        with self._arrived:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]

    def record_start(self, path: str) -> None:
        with self._arrived:
            self.started.append(path)
            self._arrived.notify_all()

    def wait_started(self, path: str, timeout: float = 10) -> bool:
        """Whether a request for `path` started arriving (head read, body maybe not) in time."""
        with self._arrived:
            return self._arrived.wait_for(lambda: path in self.started, timeout)

    def record(self, received: Received) -> None:
        with self._arrived:
            self.received.append(received)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        """Block until at least `count` requests arrived."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {self.received}")
            return list(self.received)

    def __enter__(self) -> RecordingUpstream:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
