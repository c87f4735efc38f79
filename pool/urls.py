"""The http(s) URLs the pool is given (a source's list, a reachability test's target)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from pool.errors import invalid

MAX_URL_CHARS = 2048


def http_url(url: str) -> SplitResult:
    """`url` split, when it is one http or https URL with a host and a valid port; a 422
    naming `url` otherwise."""
    if len(url) > MAX_URL_CHARS or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise invalid("url", f"must be one URL of at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  raises ValueError for a port that is not a number in range
    except ValueError:
        raise invalid("url", "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("url", "must be an http or https URL with a host")
    return parts
