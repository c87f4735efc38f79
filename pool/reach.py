"""`POST /pool/proxies/test` (seed 003): can good pool proxies reach a URL?

Up to `count` free active proxies matching the filters (best score first) each fetch the URL
concurrently, all within `timeout_seconds`. Free of charge; leased proxies are left alone
(a lease is exclusive).

The URL is checked like the admin's other outbound calls: http(s) only, no user-info, its
host resolved here and every address it resolves to allowed by the SSRF policy (public, or
inside `PORTCULLIS_ALLOW_TARGETS`), else 422 `URL_NOT_ALLOWED`. The proxies are then asked
for the checked address, so none resolves the name itself (a DNS answer that changes, or a
proxy inside the gateway's network resolving differently, cannot redirect the test):

- http(s) proxies, `http://` URL: `GET http://<address>:<port>/path` (absolute form) with
  `Host: <name>`;
- http(s) proxies, `https://` URL: `CONNECT <address>:<port>`, then TLS verified for the name
  (SNI), then the request;
- SOCKS4/5 proxies (python-socks): a connection to the address, TLS for the name when https.

Each proxy's own address passes `PORTCULLIS_POOL_ALLOW_PROXIES` as for the checkers, and its
password is opened only in memory. `reachable` means an HTTP answer came from the URL's
server, whatever its status; a proxy's own answer (407: credentials refused; 502/504: it could
not reach the URL, in absolute form; a refused CONNECT) is not reachable. `fetch_through`
(one proxy, one URL) is the building block, also used by the target form's "test through
egress".
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from python_socks import ProxyError
from python_socks.async_.asyncio import Proxy
from sqlalchemy.orm import Session

from models.crypto import KeyRing
from models.guarded_http import OutboundError, resolve_allowed
from models.pool import PoolProxy
from models.settings import Settings
from models.ssrf_policy import Network
from pool.checkers.base import Context, Judge, Member
from pool.checkers.checks import FAILURES, SOCKS_TYPES, failure_detail
from pool.checkers.connect import (
    Refused,
    close,
    connect_tunnel,
    open_member,
    proxy_authorization,
    resolve_member,
    tls_context,
)
from pool.checkers.http1 import HttpError, read_head, request_bytes
from pool.errors import PoolError, invalid
from pool.passwords import open_password
from pool.query import (
    BEST_FIRST,
    ProxyQuery,
    filter_values,
    free_proxies,
    parse_pool_filters,
)
from pool.urls import http_url

log = logging.getLogger("portcullis.pool")

DEFAULT_COUNT = 5
MAX_COUNT = 20
DEFAULT_TIMEOUT_S = 10
MAX_TIMEOUT_S = 60
FIELDS = ("url", "count", "timeout_seconds", "protocol", "country", "anonymity", "min_score")
PROXY_GATEWAY_ERRORS = (502, 504)  # an http proxy saying it could not reach the URL
PROXY_AUTH_REQUIRED = 407  # an http proxy refusing its credentials (absolute form)


@dataclass(frozen=True)
class ReachRequest:
    """A validated `POST /proxies/test` body."""

    url: str
    count: int
    timeout_s: float
    filters: ProxyQuery


@dataclass(frozen=True)
class CheckedUrl:
    """The URL's parts and the address its host resolved to, allowed by the policy."""

    url: str
    scheme: str
    host: str
    port: int
    target: str  # path and query, origin form
    address: str

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def absolute(self) -> str:
        """The absolute-form target naming the checked address (for an http proxy)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}{self.target}"


def _whole(data: Mapping, name: str, low: int, high: int, default: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(name, f"must be a whole number between {low} and {high}")
    if value != int(value) or not low <= value <= high:
        raise invalid(name, f"must be a whole number between {low} and {high}")
    return int(value)


def parse_test_body(data: object) -> ReachRequest:
    """Validate the body; a bad field is a 422 naming it."""
    if not isinstance(data, Mapping):
        raise PoolError(400, "INVALID_JSON", "The body must be a JSON object")
    for name in data:
        if name not in FIELDS:
            known = ", ".join(FIELDS)
            raise invalid(str(name), f"is not a field of this request (fields: {known})")
    url = data.get("url")
    if not isinstance(url, str) or not url.strip():
        raise invalid("url", "is required: the http(s) URL to reach")
    filters = parse_pool_filters(data)
    return ReachRequest(
        url=url.strip(),
        count=_whole(data, "count", 1, MAX_COUNT, DEFAULT_COUNT),
        timeout_s=_whole(data, "timeout_seconds", 1, MAX_TIMEOUT_S, DEFAULT_TIMEOUT_S),
        filters=filters,
    )


def _not_allowed(message: str) -> PoolError:
    return PoolError(422, "URL_NOT_ALLOWED", f"url: {message}", {"field": "url"})


def check_url(url: str, allowed: tuple[Network, ...]) -> CheckedUrl:
    """Parse `url`, resolve its host (blocking) and check every address with the SSRF policy
    (`allowed`: the operator's `PORTCULLIS_ALLOW_TARGETS`). 422 naming `url` otherwise."""
    parts = http_url(url)
    host = parts.hostname
    if parts.username is not None or parts.password is not None:
        raise invalid("url", "must not carry a user name or password (the test sends none)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = resolve_allowed(host, port, allowed)
    except OutboundError as exc:
        raise _not_allowed(str(exc)) from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return CheckedUrl(url, parts.scheme, host, port, target, address.split("%", 1)[0])


def _result(member: Member, status: int | None, latency_ms: float | None, error: str | None):
    return {
        "proxy_id": member.id,
        "ip": member.host,
        "port": member.port,
        "reachable": error is None,
        "status_code": status,
        "latency_ms": None if latency_ms is None else round(latency_ms),
        "error": error,
    }


async def _ask(member: Member, url: CheckedUrl, timeout_s: float, proxy_tls: bool) -> int:
    """The status of the URL's answer through `member` (only the head is read); `proxy_tls`:
    an http proxy spoken to over TLS."""
    headers = {"Connection": "close", "Accept": "*/*"}
    if member.protocol in SOCKS_TYPES:
        proxy = Proxy(
            SOCKS_TYPES[member.protocol],
            member.address or member.host,
            member.port,
            username=member.username,
            password=member.password,
        )
        sock = await proxy.connect(url.address, url.port, timeout=timeout_s)
        tls = tls_context() if url.scheme == "https" else None
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=tls, server_hostname=url.host if tls else None
        )
        target = url.target
    elif url.scheme == "https":
        judge = Judge(url.url, url.scheme, url.host, url.port, url.target)
        reader, writer = await connect_tunnel(member, judge, url.address, proxy_tls)
        target = url.target
    else:
        reader, writer = await open_member(member, proxy_tls)
        target = url.absolute()
        headers.update(proxy_authorization(member))
    try:
        writer.write(request_bytes("GET", target, url.authority, headers))
        await writer.drain()
        status, _ = await read_head(reader)
    finally:
        await close(writer)
    if target != url.target and status == PROXY_AUTH_REQUIRED:
        raise HttpError("the proxy refused its username and password (407)")
    if target != url.target and status in PROXY_GATEWAY_ERRORS:
        raise HttpError(f"the proxy answered {status}: it could not reach the URL")
    return status


async def fetch_member(
    member: Member,
    url: CheckedUrl,
    timeout_s: float,
    allowed_proxies: tuple[Network, ...],
    proxy_tls: bool = False,
) -> dict:
    """One proxy fetching the checked URL within `timeout_s`: a seed 003 `results` item."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            if member.address is None:
                ctx = Context(Judge.parse(url.url), frozenset(), timeout_s, allowed_proxies)
                member.address = await resolve_member(member, ctx)
            status = await _ask(member, url, timeout_s, proxy_tls)
    except (Refused, HttpError) as exc:  # their words say what happened
        return _result(member, None, None, str(exc))
    except (*FAILURES, ProxyError, TimeoutError) as exc:
        return _result(member, None, None, failure_detail(exc))
    except Exception as exc:  # TLS and other failures: a failed result, never a 500
        log.info("reachability test through %s failed: %r", member.id, exc)
        return _result(member, None, None, failure_detail(exc))
    return _result(member, status, (time.monotonic() - started) * 1000, None)


def fetch_through(
    member: Member,
    url: str,
    timeout_s: float,
    *,
    allowed_targets: tuple[Network, ...] = (),
    allowed_proxies: tuple[Network, ...] = (),
    proxy_tls: bool = False,
) -> dict:
    """One proxy fetching one URL (blocking; runs its own event loop): the seed's `results`
    item. The URL is checked first (422 `URL_NOT_ALLOWED` as a `PoolError`), the member's
    address too (`allowed_proxies`; a refusal is a failed result). `proxy_tls`: the member is
    an http proxy reached over TLS (a fixed `https://` egress proxy; the pool's `https`
    members are plain http proxies that tunnel, and never need it)."""
    checked = check_url(url, allowed_targets)
    return asyncio.run(fetch_member(member, checked, timeout_s, allowed_proxies, proxy_tls))


def candidates(session: Session, filters: ProxyQuery, count: int) -> list[PoolProxy]:
    """Up to `count` free active proxies matching `filters`, best score first."""
    query = free_proxies(filters, time.time()).order_by(*BEST_FIRST).limit(count)
    return list(session.scalars(query))


def _member(row: PoolProxy, key_ring: KeyRing) -> tuple[Member, str | None]:
    """The row as a member, its password opened in memory; or why it cannot be used."""
    try:
        password = open_password(key_ring, row)
    except Exception:  # a tampered secret or a missing master key: never connect blind
        return Member(row.id, row.host, row.port, row.protocol), "its password cannot be opened"
    return Member(row.id, row.host, row.port, row.protocol, row.username, password), None


async def _fetch_all(
    members: list[tuple[Member, str | None]],
    url: CheckedUrl,
    timeout_s: float,
    allowed: tuple[Network, ...],
) -> list[dict]:
    async def one(member: Member, error: str | None) -> dict:
        if error is not None:
            return _result(member, None, None, error)
        return await fetch_member(member, url, timeout_s, allowed)

    return list(await asyncio.gather(*(one(m, e) for m, e in members)))


def test_reachability(
    settings: Settings,
    key_ring: KeyRing,
    session: Session,
    url: str,
    count: int,
    timeout_s: float,
    filters: ProxyQuery,
) -> dict:
    """Seed 003's answer: {"url", "results", "success_rate"} (reachable / tried). 422
    `URL_NOT_ALLOWED` for a URL the policy refuses; 404 `NO_MATCHING_PROXY` when no free
    active proxy matches. No transaction is held while the proxies are asked."""
    checked = check_url(url, settings.allow_targets)
    rows = candidates(session, filters, count)
    if not rows:
        raise PoolError(
            404,
            "NO_MATCHING_PROXY",
            "No free active proxy matches the filters",
            filter_values(filters),
        )
    members = [_member(row, key_ring) for row in rows]
    session.rollback()
    results = asyncio.run(_fetch_all(members, checked, timeout_s, settings.pool_allow_proxies))
    reachable = sum(result["reachable"] for result in results)
    return {
        "url": url,
        "results": results,
        "success_rate": round(reachable / len(results), 4) if results else 0.0,
    }


test_reachability.__test__ = False  # a "test_" name pytest must not collect where imported
