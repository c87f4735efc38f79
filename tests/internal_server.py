"""An "internal" HTTP server on a loopback address, standing in for what SSRF would reach.

It records every request that reaches it and answers from a table of canned
documents (status, body, headers, delay), so tests can tell whether the
gateway touched it and check that nothing it said comes back to a caller.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INTERNAL_MARKER = "INTERNAL-ONLY-d41d8cd9"  # in every default answer; must never reach a caller

# Every spelling of a loopback address that reaches the internal server, and every class
# of address the guard refuses (never contacted: the guard stops them before connecting).
LOOPBACK_FORMS = [
    "127.0.0.1",
    "localhost",
    "2130706433",  # decimal
    "0x7f.1",  # hex, short
    "0x7f000001",
    "127.1",  # short
    "0177.0.0.1",  # octal
    "[::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible
    "127.0.0.2",
]
OTHER_FORMS = [
    "169.254.169.254",  # cloud metadata
    "[fd00:ec2::254]",  # cloud metadata, IPv6
    "[::ffff:169.254.169.254]",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.0.1",
    "100.64.0.1",  # shared address space
    "[fe80::1]",
    "[fc00::1]",
    "[fec0::1]",  # site-local
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "[ff02::1]",
    "[::ffff:224.0.0.1]",
    "255.255.255.255",  # broadcast
    "0.0.0.0",  # unspecified
    "0",
    "[::]",
    "240.0.0.1",  # reserved
    "[64:ff9b::7f00:1]",  # NAT64 of loopback
    "[64:ff9b::a00:1]",  # NAT64 of a private address
    "[2002:7f00:1::]",  # 6to4 of loopback
    "[2002:a9fe:a9fe::]",  # 6to4 of the metadata address
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
]


@dataclass(frozen=True)
class Canned:
    status: int = 403
    body: bytes = f'{{"error": "Forbidden", "note": "{INTERNAL_MARKER}"}}'.encode()
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    delay_s: float = 0.0
    chunked: bool = False  # send the body without a Content-Length


@dataclass
class InternalServer:
    """`with InternalServer("127.0.0.2") as s:` → `s.base_url`, `s.hits`, `s.answers[path] = …`."""

    host: str = "127.0.0.1"
    answers: dict[str, Canned] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def __post_init__(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner.hits.append(self.path)
                # Read the body, so the next request on this kept-alive connection parses.
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                canned = owner.answers.get(self.path.split("?")[0], Canned())
                if canned.delay_s:
                    time.sleep(canned.delay_s)  # the internal server being slow, on purpose
                self.send_response(canned.status)
                for name, value in canned.headers:
                    self.send_header(name, value)
                if canned.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(canned.body), 65536):
                        piece = canned.body[start : start + 65536]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            do_POST = do_PUT = do_DELETE = do_GET

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server((self.host, 0), Handler)
        self.port = self._server.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}"

    def __enter__(self) -> InternalServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class BrokenServer:
    """Answers every request with an invalid HTTP status line, then closes the connection."""

    ANSWER = b"HTTP/1.1 2x0 Weird\r\nContent-Length: 2\r\n\r\nhi"

    def __init__(self, host: str = "127.0.0.1"):
        self._socket = socket.create_server((host, 0))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}"
        self._stopped = threading.Event()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            with connection:
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    received += chunk
                connection.sendall(self.ANSWER)

    def __enter__(self) -> BrokenServer:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self._socket.close()
