"""Joining a target's base URL and the caller's path so the result never leaves the base path.

The caller's path is split into segments; each is percent-decoded until it is
stable, so double encoding cannot hide anything. Empty segments (duplicate
slashes) are dropped; a segment that is `.` or `..`, or that hides a slash,
backslash or NUL, or that is not UTF-8, is refused. Segments are then
re-encoded canonically, so rules see exactly the path the target will see
(`/v1/%75sers` is `/v1/users`).

Path parameters: Java servlet containers (Tomcat, Jetty, Spring) cut a
segment at its first `;` and read `..;x` as `..`. So a segment whose part
before the first `;` is `.` or `..` is refused like the dot segment it is
(`..;`, `%2e%2e;x`, `..%3b`, `.;x`, double-encoded forms). Other servers keep
`;` literal, so a path that still carries `;` has two readings the target may
act on, `path_readings`: rules must allow both (see `models.rule_engine`).
"""

from __future__ import annotations

from urllib.parse import SplitResult, quote, unquote

# RFC 3986 pchar without the percent sign: what may stand unencoded in a segment.
SEGMENT_SAFE = "!$&'()*+,;=:@-._~"
MAX_DECODE_ROUNDS = 4
DOT_SEGMENTS = (".", "..")


class PathEscapeError(ValueError):
    """The path tries to leave the target's base path."""


def _decode(segment: str) -> str:
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = unquote(segment, errors="strict")
        if decoded == segment:
            return decoded
        segment = decoded
    raise PathEscapeError("path segment is encoded too many times")


def _check(segment: str, decoded: str) -> None:
    # mitmproxy hands raw non-UTF-8 bytes over as lone surrogates (surrogateescape).
    if not decoded.isascii():
        try:
            decoded.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PathEscapeError("path segment is not valid UTF-8") from exc
    if decoded.partition(";")[0] in DOT_SEGMENTS:
        raise PathEscapeError(f"path segment {segment!r} is a dot segment")
    if any(c in decoded for c in "/\\\x00"):
        raise PathEscapeError(f"path segment {segment!r} is not allowed")


def canonical_path(raw: str) -> str:
    """`raw` (as received, percent-encoded) as a canonical `/a/b` path below the proxy."""
    segments = []
    for segment in raw.split("/"):
        if not segment:
            continue
        try:
            decoded = _decode(segment)
        except UnicodeDecodeError as exc:
            raise PathEscapeError("path segment is not valid UTF-8 once decoded") from exc
        _check(segment, decoded)
        segments.append(quote(decoded, safe=SEGMENT_SAFE))
    path = "/" + "/".join(segments)
    if raw.endswith("/") and segments:
        path += "/"
    return path


def without_parameters(path: str) -> str:
    """Canonical `path` as a servlet container reads it: each segment's `;...` removed.

    Segments left empty are dropped, as `canonical_path` drops empty ones.
    """
    segments = [s.partition(";")[0] for s in path.split("/")]
    kept = [s for s in segments if s]
    stripped = "/" + "/".join(kept)
    if path.endswith("/") and kept:
        stripped += "/"
    return stripped


def path_readings(path: str) -> tuple[str, ...]:
    """The paths a target may act on for canonical `path`: itself, and without `;` parameters."""
    if ";" not in path:
        return (path,)
    stripped = without_parameters(path)
    return (path,) if stripped == path else (path, stripped)


def ascii_query(query: str) -> str:
    """`query` with each byte outside printable ASCII percent-encoded, other bytes as sent.

    mitmproxy hands over raw bytes of the request line as they came (non-UTF-8
    ones as lone surrogates); a URL must be ASCII, and `%FF` means to the target
    what a raw 0xFF byte meant.
    """
    if query.isascii() and query.isprintable() and " " not in query:
        return query
    try:
        raw = query.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = query.encode("utf-8", "surrogatepass")
    return "".join(chr(b) if 0x20 < b < 0x7F else f"%{b:02X}" for b in raw)


def join_target_url(base: SplitResult, path: str, query: str) -> str:
    """The URL to forward to: the base URL's path, the canonical `path`, then `query` in ASCII."""
    base_path = base.path.rstrip("/")
    url = f"{base.scheme}://{base.netloc}{base_path}{path}"
    return f"{url}?{ascii_query(query)}" if query else url
