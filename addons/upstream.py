"""The upstream leg: one pooled HTTP client that sends a checked, prepared request to a target.

Every request the gateway forwards leaves through `UpstreamClient.send`, so the
rules for the upstream leg live here once:

- it connects only to addresses the SSRF guard returned for the host (the
  connector resolves through the guard), so a name cannot pass the check and
  then resolve elsewhere;
- connect and read timeouts end in `TargetTimeout`, connection failures in
  `TargetUnreachable`, both of which the caller turns into JSON 504 / 502;
- `open` returns once the status and headers are in, the body still to read
  (`UpstreamStream`), so the forward stage can stream it; `send` reads it whole with a
  bound: past `max_body` bytes it stops reading and raises `ResponseTooLarge`, whether
  or not a Content-Length was sent;
- no cookie jar, no redirects followed, no headers invented, bodies passed
  through still encoded;
- through a target's egress proxy (`EgressRoute`): http/https proxies by aiohttp's own
  proxy support, SOCKS by aiohttp-socks (addons/egress_connect.py); the target's host is
  checked by the guard and the proxy asked for the checked address, and the proxy's own
  address must pass the guard too. The proxy's failures end in `EgressFailure`;
- direct routes (no egress proxy) go through the lean client (addons/lean_upstream.py:
  pooled asyncio connections, httptools) unless `client="aiohttp"`; egress stays on aiohttp.
  tests/test_upstream_differential.py holds both to the same outcomes on a hostile corpus.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import NoReturn, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from addons.egress import EgressRoute
from addons.egress_connect import SocksSessions
from addons.lean_upstream import BODYLESS_STATUSES, MAX_HEADER_BYTES, LeanPool, request_head
from addons.ssrf import TargetGuard, TargetRefused, TargetUnresolvable
from addons.upstream_errors import (
    EgressFailure,
    EgressUnusable,
    NoEgressProxy,
    ResponseTooLarge,
    TargetTimeout,
    TargetUnreachable,
    UpstreamFailure,
)

__all__ = [
    "EgressFailure",
    "EgressUnusable",
    "NoEgressProxy",
    "ResponseTooLarge",
    "TargetTimeout",
    "TargetUnreachable",
    "UpstreamFailure",
]

# Hop-by-hop and framing headers: meaningful for one connection only (RFC 9110 §7.6.1).
# The client computes framing for its own connection.
CONNECTION_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Headers aiohttp would add when the caller did not send them; a proxy adds none.
NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
GET_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})  # aiohttp adds no Content-Length: 0
SOCKS_SCHEMES = frozenset({"socks4", "socks5"})
UPSTREAM_CLIENTS = ("lean", "aiohttp")
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class UpstreamRequest:
    """A request ready to send: the target URL and every header, credential injected."""

    method: str
    url: str  # already percent-encoded; sent as is
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    reason: str
    headers: tuple[tuple[bytes, bytes], ...]  # connection headers removed
    body: bytes
    headers_at: float  # epoch seconds the status line arrived
    finished_at: float


@dataclass(frozen=True)
class Timeouts:
    connect_s: float
    read_s: float  # for the response to start, and between reads of it


def forwardable(headers: tuple[tuple[str, str], ...], streamed: bool) -> list[tuple[str, str]]:
    """Headers minus connection headers, Host and, unless the body is streamed, Content-Length.

    A buffered body may have been rewritten (`proxyAdditionalData`), so its
    length is computed again; a streamed body keeps the caller's length so the
    target sees the same framing the caller chose.
    """
    listed = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    dropped = CONNECTION_HEADERS | listed | {"host"} | (set() if streamed else {"content-length"})
    return [(name, value) for name, value in headers if name.lower() not in dropped]


def response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> tuple[tuple[bytes, bytes], ...]:
    listed = {
        token.strip().lower()
        for name, value in raw
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    dropped = {n.encode() for n in CONNECTION_HEADERS} | listed
    return tuple((name, value) for name, value in raw if name.lower() not in dropped)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, answered by the SSRF guard: only allowed addresses come back."""

    def __init__(self, guard: TargetGuard):
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        addresses = await self._guard.allowed_addresses(host, port)
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


class UpstreamClient:
    """A connection pool shared by every flow of this process. Create and use on one loop."""

    def __init__(
        self,
        guard: TargetGuard,
        timeouts: Timeouts,
        ssl_context: ssl.SSLContext | bool = True,
        max_connections: int = 1000,
        client: str = "lean",
    ):
        """`client`: "lean" (direct routes through addons/lean_upstream.py) or "aiohttp"."""
        if client not in UPSTREAM_CLIENTS:
            raise ValueError(f"unknown upstream client {client!r}: one of {UPSTREAM_CLIENTS}")
        self.guard = guard
        self.timeouts = timeouts
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._lean: LeanPool | None = None
        self._use_lean = client == "lean"
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(guard),
            use_dns_cache=False,  # the guard caches; aiohttp's cache would skip the guard
            limit=max_connections,
            ssl=ssl_context,
        )
        self._session = new_session(connector)
        self._socks = SocksSessions(guard, new_session, ssl_context)

    async def close(self) -> None:
        await self._session.close()
        await self._socks.close()
        if self._lean is not None:
            await self._lean.close()

    async def send(
        self,
        request: UpstreamRequest,
        body: bytes | AsyncIterable[bytes] | None,
        max_body: int,
        timeouts: Timeouts | None = None,
        egress: EgressRoute | None = None,
    ) -> UpstreamResponse:
        """Send `request` with `body`; the complete response, or an `UpstreamFailure`.

        `open` and then `read_bounded`: past `max_body` bytes `ResponseTooLarge`.
        """
        opened = await self.open(request, body, timeouts, egress)
        return await read_bounded(opened, request.method, max_body)

    async def open(
        self,
        request: UpstreamRequest,
        body: bytes | AsyncIterable[bytes] | None,
        timeouts: Timeouts | None = None,
        egress: EgressRoute | None = None,
    ) -> UpstreamStream:
        """Send `request` with `body`; the response once its status and headers are in.

        The body is still to read (`UpstreamStream.chunks`); the caller closes the
        stream. `timeouts` replaces the client's for this request; `egress` is the proxy
        it goes through (None: directly). `TargetRefused` (from the SSRF guard) passes
        through unchanged; the egress proxy's failures raise `EgressFailure`.
        """
        timeouts = timeouts or self.timeouts
        url = URL(request.url, encoded=True)
        # aiohttp does not resolve IP literals, so they are checked here; names are
        # checked again by the resolver on every new connection.
        host = url.raw_host or ""
        addresses = self.guard.checked(host)
        if addresses is None:
            addresses = await self.guard.allowed_addresses(host, url.port or 0)
        streamed = body is not None and not isinstance(body, bytes)
        headers = forwardable(request.headers, streamed)
        if egress is None:
            if self._use_lean:
                return await self._lean_exchange(
                    request.method, url, addresses, headers, body, timeouts
                )
            return await self._exchange(self._session, request.method, url, headers, body, timeouts)
        proxy_ip = await self._proxy_address(egress)
        if egress.scheme in SOCKS_SCHEMES:  # the connector pins the target's address itself
            held = contextlib.AsyncExitStack()
            session = await held.enter_async_context(self._socks.session(egress, proxy_ip))
            try:
                opened = await self._exchange(
                    session, request.method, url, headers, body, timeouts, egress
                )
            except BaseException:
                await held.aclose()
                raise
            opened.held = held  # the session stays in use until the body is read or dropped
            return opened
        options: dict = {}
        if str(addresses[0]) != host:
            # The proxy is asked for the checked address, never the name (it could resolve
            # the name elsewhere); Host and the TLS server name stay the target's.
            headers.append(("Host", url.host_port_subcomponent or host))
            if url.scheme == "https":
                options["server_hostname"] = host
            url = url.with_host(str(addresses[0]))
        # By name: aiohttp resolves the proxy's host through the guard, as any other.
        options["proxy"] = URL.build(scheme=egress.scheme, host=egress.host, port=egress.port)
        if egress.username is not None:
            try:
                credentials = aiohttp.encode_basic_auth(egress.username, egress.password or "")
            except ValueError as exc:  # a ':' in the username cannot be sent in Basic
                raise EgressFailure("the egress proxy's username cannot be sent") from exc
            if url.scheme == "https":  # on the CONNECT request only, never inside the tunnel
                options["proxy_headers"] = {"Proxy-Authorization": credentials}
            else:
                headers.append(("Proxy-Authorization", credentials))
        return await self._exchange(
            self._session, request.method, url, headers, body, timeouts, egress, options
        )

    async def _lean_exchange(
        self,
        method: str,
        url: URL,
        addresses: tuple,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] | None,
        timeouts: Timeouts,
    ) -> UpstreamStream:
        """One request through the lean client, framed as aiohttp frames it."""
        if self._lean is None:
            self._lean = LeanPool(self._ssl_context, self._max_connections)
        chunked = False
        if isinstance(body, bytes) and body:
            framing = f"Content-Length: {len(body)}\r\n"
        elif body is None or isinstance(body, bytes):
            body = None
            framing = "" if method in GET_METHODS else "Content-Length: 0\r\n"
        elif any(name.lower() == "content-length" for name, _ in headers):
            framing = ""
        else:
            framing, chunked = "Transfer-Encoding: chunked\r\n", True
        scheme = url.scheme
        port = url.port or DEFAULT_PORTS[scheme]
        head = request_head(
            method, url.raw_path_qs or "/", url.host_port_subcomponent or "", headers, framing
        )
        response = await self._lean.open(
            method,
            (scheme, url.raw_host or "", port),
            addresses,
            head,
            body,
            chunked,
            timeouts.connect_s,
            timeouts.read_s,
        )
        return UpstreamStream(response, method, timeouts, time.time())

    async def _proxy_address(self, egress: EgressRoute) -> str:
        """The egress proxy's address, checked by the SSRF guard like a target's."""
        try:
            addresses = await self.guard.allowed_addresses(egress.host, egress.port)
        except TargetRefused as exc:
            raise EgressFailure(
                "the egress proxy's address is not one the gateway connects to",
                refused_address=True,
            ) from exc
        except TargetUnresolvable as exc:
            raise EgressFailure("the egress proxy's host name does not resolve") from exc
        return str(addresses[0])

    @staticmethod
    async def _exchange(
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] | None,
        timeouts: Timeouts,
        egress: EgressRoute | None = None,
        options: dict | None = None,
    ) -> UpstreamStream:
        """One request on `session`, up to the response's head; failures sorted into the
        target's and the proxy's."""
        try:
            response = await session.request(
                method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=client_timeout(timeouts),
                **(options or {}),
            )
        except Exception as exc:
            _reraise(exc, timeouts, egress)
        if response.status == 407 and _proxy_answers(egress, url):
            response.close()
            # Without a tunnel, the proxy's own refusal comes back as an answer.
            raise EgressFailure("the egress proxy refused its credentials (407)")
        return UpstreamStream(AiohttpSource(response), method, timeouts, time.time())


class ResponseSource(Protocol):
    """What `UpstreamStream` reads: an answer whose head is in (aiohttp's through
    `AiohttpSource`, the lean client's `LeanResponse`)."""

    status: int
    reason: str
    raw_headers: tuple[tuple[bytes, bytes], ...]
    content_length: int | None

    def at_eof(self) -> bool: ...
    def read_nowait(self) -> bytes: ...
    async def readany(self) -> bytes: ...
    def release(self) -> None: ...
    def close(self) -> None: ...


class AiohttpSource:
    """An aiohttp response as a `ResponseSource`."""

    __slots__ = ("_content", "_response", "content_length", "raw_headers", "reason", "status")

    def __init__(self, response: aiohttp.ClientResponse):
        self._response = response
        self._content = response.content
        self.status = response.status
        self.reason = response.reason or ""
        self.raw_headers = response.raw_headers
        self.content_length = response.content_length

    def at_eof(self) -> bool:
        return self._content.at_eof()

    def read_nowait(self) -> bytes:
        return self._content.read_nowait()

    async def readany(self) -> bytes:
        return await self._content.readany()

    def release(self) -> None:
        self._response.release()

    def close(self) -> None:
        self._response.close()


class UpstreamStream:
    """A target's answer whose status and headers are in and whose body is still to read.

    Close it (`close`) whether or not the body was read: an unread body drops the
    connection, a completely read one returns it to the pool.
    """

    def __init__(
        self,
        response: ResponseSource,
        method: str,
        timeouts: Timeouts,
        headers_at: float,
    ):
        self._response = response
        self._timeouts = timeouts
        self.method = method
        self.status = response.status
        self.reason = response.reason
        self.headers = response_headers(response.raw_headers)
        self.headers_at = headers_at
        self.content_length = response.content_length
        self.held: contextlib.AsyncExitStack | None = None  # a SOCKS session in use
        self._closed = False

    @property
    def bodyless(self) -> bool:
        """HEAD, 204 and 304 answers have no body, whatever their headers say."""
        return self.method == "HEAD" or self.status in BODYLESS_STATUSES

    @property
    def at_eof(self) -> bool:
        """Whether every byte of the body has been read."""
        return self.bodyless or self._response.at_eof()

    def available(self) -> bytes:
        """What of the body is already buffered, without waiting for more."""
        if self.bodyless or self._response.at_eof():
            return b""
        try:
            return self._response.read_nowait()
        except Exception as exc:  # the connection broke already
            _reraise(exc, self._timeouts, None, reached=True)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The rest of the body as it arrives; `UpstreamFailure` if the target breaks off
        or is idle longer than the read timeout."""
        if self.bodyless:
            return
        response = self._response
        while True:
            try:
                chunk = await response.readany()
            except Exception as exc:
                _reraise(exc, self._timeouts, None, reached=True)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        """Done with the answer: a fully read one's connection is reused, any other closed."""
        if self._closed:
            return
        self._closed = True
        if self.at_eof:
            self._response.release()
        else:
            self._response.close()
        if self.held is not None:
            held, self.held = self.held, None
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(held.aclose())


async def read_bounded(opened: UpstreamStream, method: str, max_body: int) -> UpstreamResponse:
    """`opened`'s whole body, at most `max_body` bytes (else `ResponseTooLarge`); closed after."""
    try:
        if opened.bodyless:
            content = b""
        else:
            announced = opened.content_length
            if announced is not None and announced > max_body:
                raise ResponseTooLarge(opened.status, announced, max_body)
            chunks, size = [], 0
            async for chunk in opened.chunks():
                size += len(chunk)
                if size > max_body:
                    raise ResponseTooLarge(opened.status, None, max_body)
                chunks.append(chunk)
            content = b"".join(chunks)
    finally:
        opened.close()  # an answer refused before its end drops its connection
    return UpstreamResponse(
        status=opened.status,
        reason=opened.reason,
        headers=opened.headers,
        body=content,
        headers_at=opened.headers_at,
        finished_at=time.time(),
    )


def _reraise(
    exc: Exception, timeouts: Timeouts, egress: EgressRoute | None, reached: bool = False
) -> NoReturn:
    failure = upstream_failure(exc, timeouts, egress, reached)
    if failure is exc:
        raise exc
    raise failure from exc


def upstream_failure(
    exc: BaseException, timeouts: Timeouts, egress: EgressRoute | None, reached: bool = False
) -> UpstreamFailure | BaseException:
    """What an exception of aiohttp's (or the guard's) means for the caller; others unchanged."""
    if isinstance(exc, UpstreamFailure | TargetRefused):
        return exc
    if isinstance(exc, TargetUnresolvable):
        return TargetUnreachable(str(exc))
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        # Not the OS error's text: asyncio's names the proxy's address.
        errno = exc.os_error.errno
        reason = os.strerror(errno) if errno else type(exc.os_error).__name__
        return EgressFailure(f"could not connect to the egress proxy ({reason})")
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        what = "its credentials" if exc.status == 407 else "the tunnel"
        return EgressFailure(f"the egress proxy refused {what} ({exc.status})")
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        if egress is not None and isinstance(exc, aiohttp.ConnectionTimeoutError):
            return EgressFailure("the egress proxy did not accept a connection in time")
        return TargetTimeout(_timeout_message(exc, timeouts))
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TargetUnreachable(f"could not connect to the target: {exc.os_error}")
    if isinstance(exc, aiohttp.ClientError) or reached:
        what = _what_broke(exc) if isinstance(exc, aiohttp.ClientError) else type(exc).__name__
        failure = TargetUnreachable(f"the target's answer was broken off or invalid: {what}")
        failure.reached = True
        return failure
    return exc


def _proxy_answers(egress: EgressRoute | None, url: URL) -> bool:
    """Whether an answer may be the proxy's own: an http(s) proxy and a plain-http target
    (absolute-form requests); through a CONNECT tunnel or SOCKS, every answer is the target's."""
    return egress is not None and egress.scheme not in SOCKS_SCHEMES and url.scheme == "http"


def new_session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
    """A session as the upstream leg uses them: no cookies, no decompression, no added headers."""
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=NO_AUTO_HEADERS,
        max_line_size=MAX_HEADER_BYTES,
        max_field_size=MAX_HEADER_BYTES,
    )


@functools.lru_cache(maxsize=32)
def client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s
    )


def _timeout_message(exc: Exception, timeouts: Timeouts) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"the target did not accept a connection within {timeouts.connect_s:g}s"
    return f"the target did not answer within {timeouts.read_s:g}s"


def _what_broke(exc: aiohttp.ClientError) -> str:
    """What was wrong with the target's answer, never with the request's URL.

    aiohttp's own messages name the URL, whose query can hold an injected
    credential; these words go to the caller, the request log and job errors.
    """
    if isinstance(exc, aiohttp.ClientResponseError):
        lines = (exc.message or "").strip().splitlines()
        return lines[0].rstrip(": ") if lines else "invalid response"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection closed before a complete response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was incomplete or malformed"
    return type(exc).__name__
