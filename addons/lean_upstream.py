"""A lean HTTP/1.1 client for the upstream leg's direct routes: pooled `asyncio.Protocol`
connections, answers parsed by httptools (llhttp, the parser aiohttp itself uses), strictly.

`UpstreamClient.open` (addons/upstream.py) uses it for targets reached directly (no egress
proxy); egress through http/SOCKS proxies stays on aiohttp. It keeps the upstream leg's
rules (addons/upstream.py's docstring), and is stricter than aiohttp where aiohttp's leniency
could let an answer desynchronise a connection:

- it connects only to the addresses the SSRF guard returned (tried in order), TLS with the
  caller's context, the server name the target's host (none for IP literals);
- the request goes out as given: method, path and query as encoded, `Host` from the URL, the
  headers in order, nothing added but framing (`Content-Length`, or `Transfer-Encoding:
  chunked` for a streamed body of unknown length);
- the answer: 1xx skipped (101 refused), HEAD/204/304 bodyless, a head of at most
  `MAX_HEADER_BYTES` and `MAX_HEADERS` fields; llhttp in strict mode refuses obs-fold, control
  characters in values, bare LF, duplicate or conflicting framing, bad chunk sizes; any of
  these ends in `TargetUnreachable` with `reached = True`, never an answer passed on;
- a connection goes back to the pool only when its answer was read to its end, framed by
  length or chunks, with keep-alive and nothing extra on the wire; a stale pooled connection
  that closes before the first byte of an answer is retried once on a new one for
  idempotent methods with a buffered body.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import re
import ssl
from collections.abc import AsyncIterable, Sequence

import httptools

from addons.upstream_errors import TargetTimeout, TargetUnreachable, UpstreamFailure

MAX_HEADER_BYTES = 64 * 1024  # lean: the whole head; aiohttp (addons/upstream.py): one line
MAX_HEADERS = 128  # aiohttp's default
IDLE_SECONDS = 60.0
BODYLESS_STATUSES = frozenset({204, 304})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
HIGH_WATER = 256 * 1024  # buffered body bytes before reading from the socket pauses
# https://www.rfc-editor.org/rfc/rfc9110#section-5.5-5, as aiohttp's writer
FORBIDDEN_IN_HEADERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

BROKEN = "the target's answer was broken off or invalid: "
CLOSED_EARLY = "the connection closed before a complete response"
BODY_BROKEN = "the response body was incomplete or malformed"

Key = tuple[str, str, int]


def broken(what: str) -> TargetUnreachable:
    """A target's answer that cannot be passed on (the words `_what_broke` uses)."""
    failure = TargetUnreachable(BROKEN + what)
    failure.reached = True
    return failure


class _Refused(Exception):
    """Raised inside a parser callback to stop llhttp; carries the failure to report."""

    def __init__(self, failure: UpstreamFailure | None):
        super().__init__(str(failure))
        self.failure = failure


class LeanResponse:
    """One answer on one connection: the httptools callbacks and the body's buffer.

    The shape `UpstreamStream` reads (addons/upstream.py): `status`, `reason`,
    `raw_headers`, `content_length`, `at_eof()`, `read_nowait()`, `readany()`,
    `release()`, `close()`.
    """

    def __init__(self, connection: Connection, method: str, read_s: float):
        self._connection = connection
        self._method = method
        self._read_s = read_s
        self._parser = httptools.HttpResponseParser(self)
        self._reason = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._interim = False
        self.head: asyncio.Future[None] = connection.loop.create_future()
        self.status = 0
        self.reason = ""
        self.raw_headers: tuple[tuple[bytes, bytes], ...] = ()
        self.content_length: int | None = None
        self.framed = False  # the body's end is known from its framing (length or chunks)
        self.got_bytes = False
        self.complete = False
        self.keep_alive = False
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._released = False

    # -- what the connection hands in

    def feed(self, data: bytes) -> None:
        self.got_bytes = True
        if self.complete:  # bytes past the end of the answer: the connection is not reused
            self._connection.reusable = False
            return
        if not self.head.done():
            self._head_size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(broken("an upgrade (101) was not asked for"))
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                if cause.failure is not None:  # else: a bodyless answer's head ended parsing
                    self._fail(cause.failure)
            else:
                self._fail(broken(str(exc) or type(exc).__name__))  # llhttp's reason
        else:
            if not self.head.done() and self._head_size > MAX_HEADER_BYTES:
                self._fail(broken("the response head is too long"))

    def feed_eof(self) -> None:
        """The target closed its side."""
        if self.complete:
            return
        if not self.head.done():
            self._fail(broken(CLOSED_EARLY))
        elif self.framed:
            self._fail(broken(BODY_BROKEN))
        else:  # a body delimited by the end of the connection
            self.complete = True
            self._wake()

    def lost(self, exc: BaseException | None) -> None:
        if self.complete:
            return
        if exc is not None and not self.head.done():
            self._fail(broken(CLOSED_EARLY))
        else:
            self.feed_eof()

    def _fail(self, failure: BaseException) -> None:
        self._connection.reusable = False
        if self._error is None:
            self._error = failure
        if not self.head.done():
            self.head.set_exception(failure)
        self._wake()
        self._connection.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if self.head.done():  # bytes past the answer: ignored, the connection not reused
            self._connection.reusable = False
            raise _Refused(None)
        self._reason = b""
        self._fields = []

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name, value))
        if len(self._fields) > MAX_HEADERS:
            raise _Refused(broken("too many response headers"))

    def on_headers_complete(self) -> None:
        code = self._parser.get_status_code()
        if 100 <= code < 200 and code != 101:
            self._interim = True  # its on_message_complete follows; the answer is next
            return
        if code == 101:
            raise _Refused(broken("an upgrade (101) was not asked for"))
        size = len(self._reason) + 15 + sum(len(n) + len(v) + 4 for n, v in self._fields)
        if size > MAX_HEADER_BYTES:
            raise _Refused(broken("the response head is too long"))
        self.status = code
        self.reason = self._reason.decode("utf-8", "surrogateescape")
        self.raw_headers = tuple(self._fields)
        length = chunked = None
        for name, value in self._fields:
            lowered = name.lower()
            if lowered == b"content-length":
                length = int(value)  # llhttp accepted it: digits, one of it
            elif lowered == b"transfer-encoding":
                # Chunked only as the final coding; otherwise the body runs to the close
                # (RFC 9112 §6.3). llhttp refuses it with a Content-Length.
                chunked = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"

        self.content_length = length
        bodyless = self._method == "HEAD" or code in BODYLESS_STATUSES
        if bodyless:
            # No body follows whatever the headers say; one that announced a body leaves
            # the connection in doubt, so it is not reused.
            self.complete = True
            announced = length or any(n.lower() == b"transfer-encoding" for n, _ in self._fields)
            self.keep_alive = self._parser.should_keep_alive() and not announced
            self._connection.reusable = self.keep_alive
        else:
            self.framed = length is not None or bool(chunked)
        self.head.set_result(None)
        if bodyless:
            raise _Refused(None)  # stop parsing: anything after the head is not ours

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER:
            self._connection.pause()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self.complete = True
        self.keep_alive = self.framed and self._parser.should_keep_alive()
        self._wake()

    # -- what UpstreamStream reads

    def at_eof(self) -> bool:
        return self.complete and not self._body

    def read_nowait(self) -> bytes:
        if self._body:
            data = b"".join(self._body)
            self._body.clear()
            self._buffered = 0
            self._connection.resume()
            return data
        if self._error is not None:
            raise self._error
        return b""

    async def readany(self) -> bytes:
        """The next bytes of the body; b"" at its end."""
        while not self._body:
            if self._error is not None:
                raise self._error
            if self.complete:
                return b""
            self._waiter = self._connection.loop.create_future()
            try:
                async with asyncio.timeout(self._read_s):
                    await self._waiter
            except TimeoutError:
                self._connection.reusable = False
                raise TargetTimeout(f"the target did not answer within {self._read_s:g}s") from None
            finally:
                self._waiter = None
        return self.read_nowait()

    def release(self) -> None:
        """Done with a completely read answer: its connection goes back to the pool."""
        if not self._released:
            self._released = True
            self._connection.finished(self.at_eof() and self.keep_alive and self._error is None)

    def close(self) -> None:
        """Done without reading it all: the connection is closed, and a read waiting on
        it (another task's) fails at once as it would on a broken connection."""
        if not self._released:
            self._released = True
            if self._error is None and not self.complete:
                self._error = broken(CLOSED_EARLY)
                self._wake()
            self._connection.finished(False)


class Connection(asyncio.Protocol):
    """One connection to a target; carries one exchange at a time."""

    def __init__(self, pool: LeanPool, key: Key):
        self.pool = pool
        self.key = key
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.response: LeanResponse | None = None
        self.reusable = True
        self.closed = False
        self.reused = False
        self.idle_since = 0.0  # loop time it went back to the pool
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self._writing_paused = False
        self.writer: asyncio.Task | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # unasked bytes on an idle connection
            self.abort()
            return
        self.response.feed(data)

    def eof_received(self) -> bool:
        self.reusable = False
        if self.response is not None:
            self.response.feed_eof()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.reusable = False
        self.pool.forget(self)
        if self.response is not None:
            self.response.lost(exc)
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("connection lost"))

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("connection lost")
        if self._writing_paused:
            self._drain = self.loop.create_future()
            await self._drain

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def finished(self, reusable: bool) -> None:
        """The exchange is over: back to the pool, or closed."""
        writer, self.writer = self.writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            reusable = False
        self.response = None
        self.resume()
        if reusable and self.reusable and not self.closed:
            self.pool.put(self)
        else:
            self.abort()


class LeanPool:
    """Pooled connections per (scheme, host, port): LIFO idle lists, a global cap."""

    def __init__(self, ssl_context: ssl.SSLContext | bool = True, max_connections: int = 1000):
        self.loop = asyncio.get_running_loop()
        if ssl_context is True:
            ssl_context = ssl.create_default_context()
        elif ssl_context is False:
            ssl_context = ssl.create_default_context()
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
        self._ssl = ssl_context
        self._idle: dict[Key, list[Connection]] = {}
        self._cap = max_connections
        self._count = 0  # connections open or being opened
        self._open: set[Connection] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None

    async def close(self) -> None:
        for connection in list(self._open):
            connection.abort()
        self._idle.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def put(self, connection: Connection) -> None:
        idle = self._idle.setdefault(connection.key, [])
        idle.append(connection)
        connection.idle_since = self.loop.time()
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(IDLE_SECONDS, self._sweep)
        self._wake_one()

    def _sweep(self) -> None:
        """Close connections idle for IDLE_SECONDS; one timer for the pool, not one each."""
        self._sweeper = None
        now, oldest = self.loop.time(), None
        for idle in self._idle.values():
            for connection in list(idle):
                if now - connection.idle_since >= IDLE_SECONDS:
                    idle.remove(connection)
                    connection.abort()
                elif oldest is None or connection.idle_since < oldest:
                    oldest = connection.idle_since
        if oldest is not None:
            self._sweeper = self.loop.call_later(oldest + IDLE_SECONDS - now, self._sweep)

    def forget(self, connection: Connection) -> None:
        if connection in self._open:
            self._open.discard(connection)
            self._count -= 1
            self._wake_one()
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    def _pooled(self, key: Key) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.closed or not connection.reusable:
                continue
            if self.loop.time() - connection.idle_since >= IDLE_SECONDS:
                connection.abort()  # the sweep has not come round to it yet
                continue
            connection.reused = True
            return connection
        return None

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _acquire(self, key: Key, addresses: Sequence[object], connect_s: float) -> Connection:
        """A pooled connection for `key`, else a new one within the cap; at the cap, an idle
        connection of another key is closed to make room, or the next one freed waited for."""
        while True:
            connection = self._pooled(key)
            if connection is not None:
                return connection
            if self._count < self._cap:
                self._count += 1
                try:
                    connection = await self._dial(key, addresses, connect_s)
                except BaseException:
                    self._count -= 1
                    self._wake_one()
                    raise
                self._open.add(connection)
                return connection
            self._evict_idle()  # its connection_lost frees a place and wakes a waiter
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass the wake-up on
                raise

    def _evict_idle(self) -> None:
        for idle in self._idle.values():
            if idle:
                idle.pop(0).abort()  # the oldest of a list
                return

    async def _dial(self, key: Key, addresses: Sequence[object], connect_s: float) -> Connection:
        scheme, host, port = key
        tls = self._ssl if scheme == "https" else None
        server_hostname = None
        if tls is not None and not _is_ip_literal(host):
            server_hostname = host
        last: BaseException | None = None
        for address in addresses:
            connection = Connection(self, key)
            try:
                async with asyncio.timeout(connect_s):
                    await self.loop.create_connection(
                        lambda connection=connection: connection,
                        str(address),
                        port,
                        ssl=tls,
                        server_hostname=server_hostname,
                    )
            except TimeoutError:
                last = TargetTimeout(
                    f"the target did not accept a connection within {connect_s:g}s"
                )
                continue
            except ssl.SSLError as exc:
                last = TargetUnreachable(f"could not connect to the target: {exc}")
                continue
            except OSError as exc:
                last = TargetUnreachable(f"could not connect to the target: {exc}")
                continue
            return connection
        raise last or TargetUnreachable("could not connect to the target: no address")

    async def open(
        self,
        method: str,
        key: Key,
        addresses: Sequence[object],
        head: bytes,
        body: bytes | AsyncIterable[bytes] | None,
        chunked: bool,
        connect_s: float,
        read_s: float,
    ) -> LeanResponse:
        """Send the request on a pooled or new connection; the answer once its head is in."""
        retry = method in IDEMPOTENT and (body is None or isinstance(body, bytes))
        while True:
            connection = await self._acquire(key, addresses, connect_s)
            if not connection.reused:
                retry = False
            response = LeanResponse(connection, method, read_s)
            connection.response = response
            if body is None or isinstance(body, bytes):
                connection.transport.write(head + body if body else head)
            else:
                connection.transport.write(head)
                connection.writer = self.loop.create_task(
                    _write_streamed(connection, response, body, chunked)
                )
            try:
                async with asyncio.timeout(read_s):
                    await response.head
            except TimeoutError:
                response.close()
                raise TargetTimeout(f"the target did not answer within {read_s:g}s") from None
            except UpstreamFailure:
                response.close()
                if retry and connection.reused and not response.got_bytes:
                    retry = False
                    continue  # a stale pooled connection: once more on a new one
                raise
            except BaseException:
                response.close()
                raise
            return response


async def _write_streamed(
    connection: Connection,
    response: LeanResponse,
    body: AsyncIterable[bytes],
    chunked: bool,
) -> None:
    """Send a streamed body (chunked unless the caller gave its length); a failure of the
    caller's body fails the exchange."""
    transport = connection.transport
    try:
        async for chunk in body:
            if not chunk:
                continue
            if chunked:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
            await connection.drain()
        if chunked:
            transport.write(b"0\r\n\r\n")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the caller's body broke off, or the target's connection
        failure = TargetUnreachable(f"the request body could not be sent ({type(exc).__name__})")
        failure.reached = True
        response._fail(failure)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def request_head(
    method: str, target: str, host: str, headers: Sequence[tuple[str, str]], framing: str
) -> bytes:
    """The request line and header block as aiohttp writes them (UTF-8, controls refused)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    text = "\r\n".join(lines) + "\r\n" + framing + "\r\n"
    if FORBIDDEN_IN_HEADERS.search("".join(lines)):
        raise ValueError(
            "Forbidden control character detected in headers. Potential header injection attack."
        )
    return text.encode("utf-8")
