"""A small HTTP/1.1 client over asyncio streams: one request, one bounded answer.

Just enough for the judge's request through a proxy (absolute form), inside a CONNECT tunnel
or over a SOCKS connection, and for a CONNECT itself. Answers are cut off at MAX_ANSWER_BYTES.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "Portcullis-pool-checker/1"


class HttpError(Exception):
    """The answer was not HTTP/1.x, was too large, or the connection ended too early."""


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


def request_bytes(method: str, target: str, host: str, headers: dict[str, str] | None = None):
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Status and headers of an answer (the body left in `reader`)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise HttpError("the connection closed before an HTTP answer") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpError("the answer's head is too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"not an HTTP answer: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        if int(length) > MAX_ANSWER_BYTES:
            raise HttpError("the answer is too large")
        try:
            return await reader.readexactly(int(length))
        except asyncio.IncompleteReadError as exc:
            raise HttpError("the answer ended early") from exc
    body = await reader.read(MAX_ANSWER_BYTES + 1)
    while body and len(body) <= MAX_ANSWER_BYTES:
        more = await reader.read(MAX_ANSWER_BYTES + 1 - len(body))
        if not more:
            break
        body += more
    if len(body) > MAX_ANSWER_BYTES:
        raise HttpError("the answer is too large")
    return body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size_line = await reader.readline()
        try:
            size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
        except ValueError as exc:
            raise HttpError("bad chunked encoding") from exc
        if size == 0:
            return body
        if len(body) + size > MAX_ANSWER_BYTES:
            raise HttpError("the answer is too large")
        try:
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        except asyncio.IncompleteReadError as exc:
            raise HttpError("the answer ended early") from exc


async def exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    method: str,
    target: str,
    host: str,
    headers: dict[str, str] | None = None,
) -> HttpAnswer:
    """Send one request and read its whole (bounded) answer."""
    writer.write(request_bytes(method, target, host, {"Connection": "close", **(headers or {})}))
    await writer.drain()
    status, answer_headers = await read_head(reader)
    return HttpAnswer(status, answer_headers, await read_body(reader, answer_headers))
