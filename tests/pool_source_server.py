"""A real proxy-list source for the pool's tests: an HTTP server on 127.0.0.1.

`serve(path, body, content_type)` publishes a list; `hold(path)` makes answers to `path`
wait until `release(path)` (a slow source, for the scrape-lease tests), and counts how many
requests to it were in flight at once; `oversized(path, n)` streams n bytes; `drip(path)`
answers a line every 50 ms without end.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_LIMIT_S = 60  # a held answer is released after this at the latest (a failed test)

# A list as the wild writes them: comments of both kinds, blank lines, trailing words,
# duplicates, bad lines (bad port, bad address, unknown scheme, bare IPv6), IPv6 in brackets,
# credentials (percent-encoded too), host names, upper case, leading zeros. All addresses are
# documentation/test ranges or .test names: nothing a test run could ever connect to.
MESSY_LIST = """\
# Free proxy list -- updated hourly
// another comment style

203.0.113.10:8080 US elite
203.0.113.10:8080
  203.0.113.11:3128\t# trailing comment
http://203.0.113.12:80/
HTTPS://203.0.113.13:443
socks5://alice:s3cr%40t@203.0.113.14:1080
SOCKS://203.0.113.15:1081
socks4://[2001:db8::15]:1080
[2001:DB8::16]:8080
Proxy.Example.TEST:3128
203.0.113.17:3128:bob:hunter2
203.0.113.18 8000
010.000.000.019:80
203.0.113.20:0
203.0.113.21:65536
203.0.113.22:port
999.0.113.23:80
ftp://203.0.113.24:21
2001:db8::25:8080
not a proxy at all
:8080
-bad-.test:80
"""
# (protocol or None, host, port) of every proxy MESSY_LIST names, once each.
MESSY_EXPECTED = {
    (None, "203.0.113.10", 8080),
    (None, "203.0.113.11", 3128),
    ("http", "203.0.113.12", 80),
    ("https", "203.0.113.13", 443),
    ("socks5", "203.0.113.14", 1080),
    ("socks5", "203.0.113.15", 1081),
    ("socks4", "2001:db8::15", 1080),
    (None, "2001:db8::16", 8080),
    (None, "proxy.example.test", 3128),
    (None, "203.0.113.17", 3128),
    (None, "203.0.113.18", 8000),
    (None, "10.0.0.19", 80),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        source = self.server.source
        path = self.path.split("?", 1)[0]
        source.arrived(path)
        source.authorizations[path] = self.headers.get("Authorization")
        try:
            held = source.holds.get(path)
            if held is not None:
                held.wait(HOLD_LIMIT_S)
            if path in source.huge:
                self._stream(source.huge[path])
                return
            if path in source.drips:
                self._drip(source.drips[path])
                return
            status, content_type, body = source.pages.get(
                path, (404, "text/plain", b"no such list")
            )
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            source.left(path)

    def _drip(self, stop: threading.Event) -> None:
        """A line every 50 ms (each read is quick, the whole answer endless) until `stop`."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        line = b"203.0.113.1:8080\n"
        try:
            while not stop.wait(0.05):  # the server's pace, not a test's synchronisation
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
        except OSError:
            pass

    def _stream(self, total: int) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        line = b"203.0.113.1:8080\n" * 4096
        remaining = total
        try:
            while remaining > 0:
                chunk = line[:remaining]
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                remaining -= len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the admin hung up once it had enough: that is the point


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    source: SourceServer

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the admin hung up: expected
            super().handle_error(request, client_address)


class SourceServer:
    """`with SourceServer() as s:` → `s.url(path)` after `s.serve(path, ...)`."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, bytes]] = {}
        self.holds: dict[str, threading.Event] = {}
        self.huge: dict[str, int] = {}
        self.drips: dict[str, threading.Event] = {}
        self.hits: dict[str, int] = {}
        self.authorizations: dict[str, str | None] = {}  # the last request's, per path
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}
        self._changed = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.source = self
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def serve(
        self, path: str, body: str | bytes, content_type: str = "text/plain", status: int = 200
    ) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.pages[path] = (status, content_type, data)
        return self.url(path)

    def oversized(self, path: str, total: int) -> str:
        self.huge[path] = total
        return self.url(path)

    def drip(self, path: str) -> str:
        """`path` answers a line every 50 ms, without end (until the server stops)."""
        self.drips[path] = threading.Event()
        return self.url(path)

    def hold(self, path: str) -> None:
        self.holds[path] = threading.Event()

    def release(self, path: str) -> None:
        self.holds.pop(path).set()

    def arrived(self, path: str) -> None:
        with self._changed:
            self.hits[path] = self.hits.get(path, 0) + 1
            self.in_flight[path] = self.in_flight.get(path, 0) + 1
            self.most_in_flight[path] = max(self.most_in_flight.get(path, 0), self.in_flight[path])
            self._changed.notify_all()

    def left(self, path: str) -> None:
        with self._changed:
            self.in_flight[path] -= 1
            self._changed.notify_all()

    def wait_hits(self, path: str, count: int, timeout: float = 30) -> None:
        """Block until `path` was asked for `count` times (AssertionError after `timeout`)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.hits.get(path, 0) >= count, timeout):
                raise AssertionError(f"{path} asked {self.hits.get(path, 0)} times, not {count}")

    def __enter__(self) -> SourceServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for event in [*self.holds.values(), *self.drips.values()]:
            event.set()
        self._server.shutdown()
        self._server.server_close()
