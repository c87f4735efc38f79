"""Connections through a SOCKS egress proxy, pinned to addresses the SSRF guard allowed.

aiohttp-socks's `ProxyConnector` hands the target's host name to the proxy; this one resolves
it through the SSRF guard first and asks the proxy for the checked address (so a name cannot
be checked here and resolved elsewhere by the proxy), then speaks TLS with the target's name
(SNI and certificate checks as for a direct connection). Anything that goes wrong before the
tunnel stands (the proxy unreachable, refusing, its SOCKS errors, credentials refused) is an
`EgressFailure`, told apart from the target's own failures; its message never holds the
proxy's credentials (python-socks' and aiohttp's own messages are not passed on).

One `ClientSession` per proxy endpoint, kept in a bounded LRU; an evicted one is closed once
its last request ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import python_socks
from aiohttp.client_proto import ResponseHandler
from aiohttp_socks import ProxyConnector
from python_socks import ProxyType
from python_socks.async_.asyncio.v2 import Proxy

from addons.egress import EgressRoute
from addons.ssrf import TargetGuard
from addons.upstream_errors import EgressFailure, TargetUnreachable

log = logging.getLogger("portcullis.egress")
MAX_SESSIONS = 64
SOCKS_TYPES = {"socks4": ProxyType.SOCKS4, "socks5": ProxyType.SOCKS5}


class _Handler(ResponseHandler):
    """Keeps the stream's writer referenced, or its transport closes when collected
    (as aiohttp-socks does, python >= 3.11.5)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter):
        super().__init__(loop)
        self._writer = writer


class PinnedSocksConnector(ProxyConnector):
    """A SOCKS4/5 connector whose targets are resolved and checked by the SSRF guard."""

    def __init__(self, guard: TargetGuard, route: EgressRoute, proxy_ip: str, **kwargs):
        super().__init__(
            host=proxy_ip,
            port=route.port,
            proxy_type=SOCKS_TYPES[route.scheme],
            username=route.username,
            password=route.password,
            rdns=False,
            **kwargs,
        )
        self._guard = guard

    async def _connect_via_proxy(
        self,
        host: str,
        port: int,
        ssl: ssl.SSLContext | None = None,
        timeout: float | None = None,
    ):
        addresses = await self._guard.allowed_addresses(host, port)  # TargetRefused passes on
        proxy = Proxy(
            proxy_type=self._proxy_type,
            host=self._proxy_host,
            port=self._proxy_port,
            username=self._proxy_username,
            password=self._proxy_password,
            rdns=False,
        )
        try:
            stream = await proxy.connect(
                dest_host=str(addresses[0]), dest_port=port, timeout=timeout
            )
        except python_socks.ProxyTimeoutError as exc:
            raise EgressFailure("the egress proxy did not answer in time") from exc
        except python_socks.ProxyConnectionError as exc:
            # Not its message: that names the proxy, which the caller never sees.
            reason = os.strerror(exc.errno) if exc.errno else "refused"
            raise EgressFailure(f"could not connect to the egress proxy ({reason})") from exc
        except python_socks.ProxyError as exc:
            raise EgressFailure(_socks_refusal(exc)) from exc
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
            raise EgressFailure(f"the egress proxy broke the connection ({reason})") from exc
        if ssl is not None:
            try:
                stream = await stream.start_tls(hostname=host, ssl_context=ssl)
            except (TimeoutError, OSError) as exc:
                await stream.close()
                failure = TargetUnreachable(f"TLS with the target failed: {_tls_reason(exc)}")
                failure.reached = True
                raise failure from exc
        transport = stream.writer.transport
        protocol = _Handler(self._loop, stream.writer)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        return transport, protocol


def _socks_refusal(exc: python_socks.ProxyError) -> str:
    """The SOCKS refusal in words of our own: the library's text may quote what it was sent."""
    code = getattr(exc, "error_code", None)
    if code is None:
        return "the egress proxy refused the connection (SOCKS error)"
    return f"the egress proxy refused the connection (SOCKS error {code})"


def _tls_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or "certificate verification failed"
    return type(exc).__name__


class SocksSessions:
    """One aiohttp session per SOCKS proxy endpoint (and credentials), LRU-bounded."""

    def __init__(
        self,
        guard: TargetGuard,
        new_session: Callable[[aiohttp.BaseConnector], aiohttp.ClientSession],
        ssl_context: ssl.SSLContext | bool,
        limit: int = MAX_SESSIONS,
    ):
        self._guard = guard
        self._new_session = new_session
        self._ssl = ssl_context
        self._limit = limit
        self._sessions: OrderedDict[tuple, list] = OrderedDict()  # key → [session, users]
        self._evicted: dict[int, list] = {}

    @asynccontextmanager
    async def session(self, route: EgressRoute, proxy_ip: str) -> AsyncIterator:
        """The session for `route` (its proxy at the checked `proxy_ip`), held while in use."""
        key = (route.scheme, proxy_ip, route.port, route.username, route.password)
        entry = self._sessions.get(key)
        if entry is None:
            connector = PinnedSocksConnector(self._guard, route, proxy_ip, ssl=self._ssl)
            entry = self._sessions[key] = [self._new_session(connector), 0]
            self._evict()
        else:
            self._sessions.move_to_end(key)
        entry[1] += 1
        try:
            yield entry[0]
        finally:
            entry[1] -= 1
            if entry[1] == 0 and id(entry) in self._evicted:
                del self._evicted[id(entry)]
                await entry[0].close()

    def _evict(self) -> None:
        while len(self._sessions) > self._limit:
            _, entry = self._sessions.popitem(last=False)
            if entry[1] == 0:
                asyncio.get_running_loop().create_task(entry[0].close())
            else:
                self._evicted[id(entry)] = entry

    async def close(self) -> None:
        entries = [*self._sessions.values(), *self._evicted.values()]
        self._sessions.clear()
        self._evicted.clear()
        for session, _ in entries:
            await session.close()
