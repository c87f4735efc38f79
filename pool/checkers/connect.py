"""Connections the checkers open: to a member (under the SSRF policy) and to the judge."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl

import certifi

from models.ssrf_policy import address_class, first_refused
from pool.checkers.base import Context, Judge, Member
from pool.checkers.http1 import HttpError, read_head

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Refused(Exception):
    """The SSRF policy refuses the member's address."""


async def resolve_member(member: Member, ctx: Context) -> str:
    """The address to connect to for `member.host`: every address it resolves to must be
    allowed (`PORTCULLIS_POOL_ALLOW_PROXIES` for non-public ones)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(member.host, member.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"{member.host} could not be resolved") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OSError(f"{member.host} could not be resolved")
    refused = first_refused(addresses, ctx.allowed)
    if refused is not None:
        raise Refused(
            f"refused: {member.host} is {refused} ({address_class(refused)}), which the "
            "pool may not connect to (PORTCULLIS_POOL_ALLOW_PROXIES)"
        )
    return addresses[0]


async def open_member(member: Member, tls: bool = False) -> Streams:
    """A connection to the member's pinned address (stage 1 resolved and checked it); with
    `tls`, TLS to the proxy itself (an `https://` fixed egress proxy), verified for its name."""
    if member.address is None:
        raise OSError("the member was not resolved")
    if tls:
        return await asyncio.open_connection(
            member.address, member.port, ssl=tls_context(), server_hostname=member.host
        )
    return await asyncio.open_connection(member.address, member.port)


def tls_context() -> ssl.SSLContext:
    """Verifying TLS to the judge: certifi's CAs and the system's (SSL_CERT_FILE/_DIR)."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    return context


async def start_judge_tls(writer: asyncio.StreamWriter, judge: Judge) -> None:
    """Upgrade a tunnel to the judge to TLS when the judge URL is https."""
    if judge.scheme == "https":
        await writer.start_tls(tls_context(), server_hostname=judge.host)


def proxy_authorization(member: Member) -> dict[str, str]:
    if member.username is None:
        return {}
    raw = f"{member.username}:{member.password or ''}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


async def connect_tunnel(
    member: Member, judge: Judge, address: str | None = None, proxy_tls: bool = False
) -> Streams:
    """A CONNECT tunnel through an http(s) member to the judge's host:port (TLS when the
    judge is https, for the judge's name). `address`: CONNECT to this checked address
    instead of the name (pinned: the member does not resolve it). `proxy_tls`: TLS to the
    proxy itself too (the judge's TLS then runs inside it)."""
    reader, writer = await open_member(member, proxy_tls)
    try:
        host = address or judge.host
        target = f"{host if ':' not in host else f'[{host}]'}:{judge.port}"
        head = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        head += [f"{k}: {v}" for k, v in proxy_authorization(member).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        status, _ = await read_head(reader)
        if status != 200:
            raise HttpError(f"the proxy refused CONNECT with {status}")
        await start_judge_tls(writer, judge)
        return reader, writer
    except BaseException:
        writer.close()
        raise


async def close(writer: asyncio.StreamWriter) -> None:
    """Close a connection whose answer was read; how the closing goes is of no interest.

    Besides OSError and SSLError, CPython 3.12.1's asyncio raises TypeError
    (`SSLProtocol._abort() takes 1 positional argument`) when TLS inside TLS (a CONNECT
    tunnel through an https:// proxy) is torn down while the peer still sends.
    """
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TypeError):
        await writer.wait_closed()
