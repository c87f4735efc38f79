"""A raw asyncio TCP server on 127.0.0.1 that answers each request with exact bytes.

The scenario is the request path's last segment (`/cl-te`, `/base/obs-fold`, ...): see
`SCENARIOS`; `stale` answers like `ok` and then closes that connection unanswered at its next
request; `silent` never answers; `stall-body` sends part of a body, then nothing.

Each request's raw bytes (head and body as received) are recorded with the
number of the connection that carried it, so tests can compare what two clients sent and
whether a connection was reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import ssl
import threading

GZIPPED = gzip.compress(b"hello compressed world", mtime=0)


def _ok(body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%b\r\n%b" % (len(body), extra, body)


# name → (answer bytes, close the connection after it)
SCENARIOS: dict[str, tuple[bytes, bool]] = {
    "ok": (_ok(), False),
    "empty": (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False),
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        False,
    ),
    "trailers": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
        False,
    ),
    "bad-chunk-size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        True,
    ),
    "chunk-overflow": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        True,
    ),
    "chunk-missing-crlf": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhelloXX6\r\n world\r\n0\r\n\r\n",
        True,
    ),
    "dup-cl-same": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        False,
    ),
    "dup-cl-differ": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 11\r\n\r\nhello world",
        True,
    ),
    "cl-list": (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", True),
    "cl-te": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        True,
    ),
    "te-identity": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nhello", True),
    "te-gzip-chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        True,
    ),
    "te-chunked-gzip": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nhello",
        True,
    ),
    "te-space": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        True,
    ),
    "cl-negative": (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello", True),
    "cl-plus": (b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", True),
    "obs-fold": (b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 5\r\n\r\nhello", True),
    "continue": (b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"after continue"), False),
    "early-hints": (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + _ok(b"after hints"),
        False,
    ),
    "switching": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", True),
    "head-cl": (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", False),
    "head-chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", False),
    "204-body": (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", False),
    "304-body": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello", False),
    "204-plain": (b"HTTP/1.1 204 No Content\r\n\r\n", False),
    "mid-body": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello", True),
    "mid-chunk": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", True),
    "mid-head": (b"HTTP/1.1 200 OK\r\nContent-Le", True),
    "before-head": (b"", True),
    "huge-header": (
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\nContent-Length: 2\r\n\r\nok",
        True,
    ),
    "many-headers": (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(100))
        + b"Content-Length: 2\r\n\r\nok",
        False,
    ),
    "too-many-headers": (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(300))
        + b"Content-Length: 2\r\n\r\nok",
        True,
    ),
    "lf-only": (b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello", True),
    "nul-in-value": (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello", True),
    "cr-in-value": (b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 5\r\n\r\nhello", True),
    "status-garbage": (b"HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello", True),
    "not-http": (b"SSH-2.0-OpenSSH\r\n\r\n", True),
    "http10-keepalive": (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello",
        False,
    ),
    "http10-no-length": (b"HTTP/1.0 200 OK\r\n\r\nhello until close", True),
    "no-length": (b"HTTP/1.1 200 OK\r\n\r\nhello until close", True),
    "connection-close": (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
        True,
    ),
    "hop-headers": (
        b"HTTP/1.1 200 OK\r\nConnection: x-drop, keep-alive\r\nX-Drop: 1\r\nKeep-Alive: 5\r\n"
        b"X-Keep: 2\r\nContent-Length: 5\r\n\r\nhello",
        False,
    ),
    "gzip": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%b"
        % (len(GZIPPED), GZIPPED),
        False,
    ),
    "extra-bytes": (_ok() + b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad", True),
    "reason-utf8": (b"HTTP/1.1 418 I\xc3\xa9m a teapot\r\nContent-Length: 0\r\n\r\n", False),
    "no-reason": (b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", False),
    "big": (_ok(b"b" * (3 * 1024 * 1024)), False),
    "stale": (_ok(b"fresh"), False),
    "ok-then-close": (_ok(), True),  # no Connection: close, the connection closed after it
    "stall-body": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello", False),
}
HOLD = {"silent", "stall-body"}  # then wait until the client leaves


@dataclasses.dataclass
class Received:
    path: str
    raw: bytes  # head and body exactly as received
    connection: int


class HostileTarget:
    """Start with `async with HostileTarget() as target`; `target.port`, `target.received`."""

    def __init__(self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.tls = tls  # a server context: the target speaks HTTPS
        self.host = host
        self.received: list[Received] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> HostileTarget:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        for writer in list(self._writers):  # connections a client still holds in its pool
            writer.close()
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        number = self._connections
        stale = False
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    body = await _read_body(reader, head)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client broke off its request
                path = head.split(b" ", 2)[1].decode()
                self.received.append(Received(path, head + body, number))
                if stale:
                    return  # closed before any byte of the answer
                name = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
                stale = name == "stale"
                answer, close = SCENARIOS.get(name, (b"", True))
                writer.write(answer)
                await writer.drain()
                if name in HOLD:
                    await reader.read()  # until the client closes
                    return
                if close:
                    return
        finally:
            self._writers.discard(writer)
            writer.close()


class ThreadedHostileTarget:
    """A `HostileTarget` on a loop of its own thread, for a gateway process to reach:
    `with ThreadedHostileTarget() as target: target.base_url`."""

    def __init__(self) -> None:
        self.target = HostileTarget()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.target.port}"

    @property
    def received(self) -> list[Received]:
        return list(self.target.received)

    def __enter__(self) -> ThreadedHostileTarget:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.target.__aenter__(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.target.__aexit__(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            fields[name.strip().lower()] = value.strip()
    if "content-length" in fields:
        return await reader.readexactly(int(fields["content-length"]))
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            body += size_line
            size = int(size_line.split(b";")[0], 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return body
    return b""
