"""Content codings (gzip, deflate, br) decoded with a bound on what they may produce.

Request bodies the rules read (models/request_body.py) and target answers the
payload filters read (addons/filters.py) are decoded here: never more than
`limit + 1` bytes are produced, however well the body compresses.
"""

from __future__ import annotations

import zlib

import brotli

GZIP = frozenset({"gzip", "x-gzip"})
DECODABLE = GZIP | {"deflate", "br"}


class CodingError(ValueError):
    """The encoded body is corrupt or truncated."""


def codings(content_encoding: str | None) -> list[str]:
    """The codings of a `Content-Encoding` header, in order, `identity` left out."""
    names = (c.strip().lower() for c in (content_encoding or "").split(","))
    return [name for name in names if name and name != "identity"]


def decode_bounded(body: bytes, coding: str, limit: int) -> bytes | None:
    """`body` decoded from `coding` (one of DECODABLE); None past `limit` bytes.

    Raises `CodingError` when the body is corrupt or truncated.
    """
    try:
        if coding == "br":
            return _unbrotli(body, limit)
        if coding in GZIP:
            return _inflate(body, 16 + zlib.MAX_WBITS, limit, members=True)
        try:
            return _inflate(body, zlib.MAX_WBITS, limit)
        except zlib.error:
            return _inflate(body, -zlib.MAX_WBITS, limit)  # raw deflate, as some peers send
    except (zlib.error, brotli.error) as error:
        raise CodingError(str(error)) from error


def _inflate(body: bytes, wbits: int, limit: int, members: bool = False) -> bytes | None:
    """zlib-decompressed `body` (every gzip member with `members`); None past `limit` bytes."""
    out = bytearray()
    rest = body
    while rest:
        inflater = zlib.decompressobj(wbits)
        out += inflater.decompress(rest, limit + 1 - len(out))
        if len(out) > limit or inflater.unconsumed_tail:
            return None
        if not inflater.eof:
            raise zlib.error("the compressed data is truncated")
        rest = inflater.unused_data if members else b""
    return bytes(out)


def _unbrotli(body: bytes, limit: int) -> bytes | None:
    """Brotli-decompressed `body`; None past `limit` bytes."""
    decompressor = brotli.Decompressor()
    out = bytearray(decompressor.process(body, output_buffer_limit=limit + 1))
    while len(out) <= limit and not decompressor.is_finished():
        more = decompressor.process(b"", output_buffer_limit=limit + 1 - len(out))
        if not more:
            raise brotli.error("the compressed data is truncated")
        out += more
    return None if len(out) > limit else bytes(out)
