"""A streaming target on 127.0.0.1 for the streamed-answer tests (issue 18).

Paths (below any prefix, e.g. the target's `/base`), each with `?id=...` naming
the request so the test can read what the target saw:

- `/sse?n=5&gap=0.3`: Server-Sent Events, chunked, one event every `gap`
  seconds; each event's data is `{"i": i, "sent": <time.time() when sent>}`.
- `/chunked?total=N`: N bytes chunked (64 KiB chunks), as fast as they go.
- `/stall?gap=5`: one event, then silence for `gap` seconds, then another.
- `/hold`: one event, then nothing, until the peer closes the connection: the
  time of that close is recorded (`closed_at(id)`), polled every 10 ms.
- `/once?size=N`: N bytes with a Content-Length, head and body in one write.
"""

from __future__ import annotations

import json
import select
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHUNK = 64 * 1024
HOLD_LIMIT_S = 30  # a held stream the peer never closes ends by itself


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def event(i: int) -> bytes:
    return f"data: {json.dumps({'i': i, 'sent': time.time()})}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        """Read the body (its size kept as `received[id]`), then answer as GET would."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            size = 0
            while length := int(self.rfile.readline().split(b";")[0], 16):
                size += len(self.rfile.read(length))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass  # trailers
        else:
            size = len(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        ident = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}.get("id")
        if ident:
            self.server.target.received[ident] = size
        self.do_GET()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        kind = parts.path.rstrip("/").rsplit("/", 1)[-1]
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        ident = query.get("id", "")
        try:
            getattr(self, f"_{kind}")(query, ident)
        except (BrokenPipeError, ConnectionResetError):
            self.server.target.record_close(ident)
        self.close_connection = True

    def _head(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _sse(self, query: dict, ident: str) -> None:
        self._head("text/event-stream")
        for i in range(int(query.get("n", 5))):
            if i:
                time.sleep(float(query.get("gap", 0.3)))  # the target's pace, not a wait
            self.wfile.write(chunk(event(i)))
        self.wfile.write(b"0\r\n\r\n")

    def _chunked(self, query: dict, ident: str) -> None:
        self._head("application/octet-stream")
        remaining = int(query["total"])
        block = b"x" * CHUNK
        while remaining > 0:
            size = min(CHUNK, remaining)
            self.wfile.write(chunk(block[:size]))
            remaining -= size
        self.wfile.write(b"0\r\n\r\n")

    def _stall(self, query: dict, ident: str) -> None:
        self._head("text/event-stream")
        self.wfile.write(chunk(event(0)))
        self._wait_for_close(ident, float(query.get("gap", 5)))

    def _hold(self, query: dict, ident: str) -> None:
        self._head("text/event-stream")
        self.wfile.write(chunk(event(0)))
        self._wait_for_close(ident, HOLD_LIMIT_S)

    def _wait_for_close(self, ident: str, limit_s: float) -> None:
        """Until the peer closes (recorded) or `limit_s` passes (then one more event)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.01)
            if readable and not self.connection.recv(1024):
                self.server.target.record_close(ident)
                return
        self.wfile.write(chunk(event(1)) + b"0\r\n\r\n")

    def _once(self, query: dict, ident: str) -> None:
        body = b"o" * int(query.get("size", 1000))
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self.wfile.write(head + body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    target: StreamingTarget


class StreamingTarget:
    """`with StreamingTarget() as target:` → `target.base_url`, `target.closed_at(id)`."""

    def __init__(self):
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.target = self
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._closed: dict[str, float] = {}
        self.received: dict[str, int] = {}  # request body sizes of POSTs with an id
        self._lock = threading.Lock()

    def record_close(self, ident: str) -> None:
        with self._lock:
            self._closed.setdefault(ident, time.time())

    def closed_at(self, ident: str, timeout: float = 5) -> float | None:
        """When the peer closed request `ident`'s connection; None if not within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if ident in self._closed:
                    return self._closed[ident]
            time.sleep(0.01)  # polling the target's own record, bounded by the deadline
        return None

    def __enter__(self) -> StreamingTarget:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
