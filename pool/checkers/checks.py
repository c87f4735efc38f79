"""The checks: stage 1 `tcp_connect`, stage 2 `http_anonymity` / `socks_anonymity`, stage 3
`https_connect`. Each returns an `Outcome`; errors become failed outcomes with a detail."""

from __future__ import annotations

import asyncio
import ipaddress
import time

from python_socks import ProxyError, ProxyType
from python_socks.async_.asyncio import Proxy

from pool.checkers.base import Context, Member, Outcome
from pool.checkers.connect import (
    Refused,
    close,
    connect_tunnel,
    open_member,
    proxy_authorization,
    resolve_member,
    tls_context,
)
from pool.checkers.grading import Address, NotGenuine, genuine_answer, grade, parse_address
from pool.checkers.http1 import HttpError, exchange
from pool.judge import new_nonce

SOCKS_TYPES = {"socks4": ProxyType.SOCKS4, "socks5": ProxyType.SOCKS5}


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


async def tcp_connect(member: Member, ctx: Context) -> Outcome:
    """Resolve the member (SSRF policy), connect, close."""
    started = time.monotonic()
    try:
        member.address = await resolve_member(member, ctx)
        _, writer = await open_member(member)
    except Refused as exc:
        return Outcome("tcp_connect", 1, False, None, str(exc))
    except OSError as exc:
        return Outcome("tcp_connect", 1, False, None, f"TCP connect failed: {_reason(exc)}")
    latency = _ms(started)
    await close(writer)
    return Outcome("tcp_connect", 1, True, latency, "TCP connect OK")


async def http_anonymity(member: Member, ctx: Context) -> Outcome:
    """A request through an http(s) member to the judge: genuine? anonymity, exit address.
    With an https judge the request goes through a CONNECT tunnel (a proxy cannot read it)."""
    nonce = new_nonce()
    started = time.monotonic()
    judge = ctx.judge
    if judge.scheme == "https":
        reader, writer = await connect_tunnel(member, judge)
        target, extra = judge.target(nonce), {}
    else:
        reader, writer = await open_member(member)
        target, extra = judge.absolute(nonce), proxy_authorization(member)
    local = _local_address(writer)
    try:
        answer = await exchange(reader, writer, "GET", target, judge.authority, extra)
    finally:
        await close(writer)
    return _graded("http_anonymity", 2, answer, nonce, ctx, started, local)


async def socks_anonymity(member: Member, ctx: Context) -> Outcome:
    """A request to the judge over a SOCKS4/5 connection made with python-socks."""
    nonce = new_nonce()
    started = time.monotonic()
    judge = ctx.judge
    proxy = Proxy(
        SOCKS_TYPES[member.protocol],
        member.address or member.host,
        member.port,
        username=member.username,
        password=member.password,
        rdns=_is_name(judge.host),
    )
    sock = await proxy.connect(judge.host, judge.port, timeout=ctx.timeout_s)
    tls = tls_context() if judge.scheme == "https" else None
    reader, writer = await asyncio.open_connection(
        sock=sock, ssl=tls, server_hostname=judge.host if tls else None
    )
    local = _local_address(writer)
    try:
        answer = await exchange(reader, writer, "GET", judge.target(nonce), judge.authority)
    finally:
        await close(writer)
    return _graded("socks_anonymity", 2, answer, nonce, ctx, started, local)


async def https_connect(member: Member, ctx: Context) -> Outcome:
    """A CONNECT tunnel through an http(s) member to the judge, the judge request inside."""
    nonce = new_nonce()
    started = time.monotonic()
    reader, writer = await connect_tunnel(member, ctx.judge)
    try:
        answer = await exchange(reader, writer, "GET", ctx.judge.target(nonce), ctx.judge.authority)
    finally:
        await close(writer)
    genuine_answer(answer, nonce)
    return Outcome("https_connect", 3, True, _ms(started), "CONNECT tunnel to the judge OK")


def _local_address(writer: asyncio.StreamWriter) -> Address | None:
    """The checker's address on its connection to the member (as the member sees it, unless
    NAT lies between): a transparent member forwards this one."""
    sockname = writer.get_extra_info("sockname")
    return parse_address(sockname[0]) if sockname else None


def _graded(
    name: str,
    stage: int,
    answer,
    nonce: str,
    ctx: Context,
    started: float,
    local: Address | None,
) -> Outcome:
    body = genuine_answer(answer, nonce)
    own = ctx.own_addresses | ({local} if local else set())
    anonymity, exit_ip, country = grade(body, own, ctx.baseline)
    detail = f"judge answer OK: {anonymity}, exit {exit_ip or 'unknown'}"
    return Outcome(name, stage, True, _ms(started), detail, anonymity, exit_ip, country)


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__


FAILURES = (OSError, HttpError, NotGenuine, ProxyError, EOFError)


def failure_detail(exc: BaseException) -> str:
    """The words a failed check's row shows."""
    if isinstance(exc, NotGenuine):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return _reason(exc)
