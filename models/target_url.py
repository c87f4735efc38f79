"""Joining a target's base URL and the caller's path so the result never leaves the base path.

The caller's path is split into segments; each is percent-decoded until it is
stable, so double encoding cannot hide anything. Empty segments (duplicate
slashes) are dropped; a segment that is `.` or `..` or that hides a slash,
backslash or NUL is refused. Segments are then re-encoded canonically, so
rules see exactly the path the target will see (`/v1/%75sers` is `/v1/users`).
"""

from __future__ import annotations

from urllib.parse import SplitResult, quote, unquote

# RFC 3986 pchar without the percent sign: what may stand unencoded in a segment.
SEGMENT_SAFE = "!$&'()*+,;=:@-._~"
MAX_DECODE_ROUNDS = 4


class PathEscapeError(ValueError):
    """The path tries to leave the target's base path."""


def _decode(segment: str) -> str:
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = unquote(segment, errors="strict")
        if decoded == segment:
            return decoded
        segment = decoded
    raise PathEscapeError("path segment is encoded too many times")


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
        if decoded in (".", "..") or any(c in decoded for c in "/\\\x00"):
            raise PathEscapeError(f"path segment {segment!r} is not allowed")
        segments.append(quote(decoded, safe=SEGMENT_SAFE))
    path = "/" + "/".join(segments)
    if raw.endswith("/") and segments:
        path += "/"
    return path


def join_target_url(base: SplitResult, path: str, query: str) -> str:
    """The URL to forward to: the base URL's path, then the canonical `path`, then `query`."""
    base_path = base.path.rstrip("/")
    url = f"{base.scheme}://{base.netloc}{base_path}{path}"
    return f"{url}?{query}" if query else url
