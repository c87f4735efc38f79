"""Fetching a source's list: under the SSRF guard, size- and time-bounded, text only.

Every failure is a `PoolError` a user can act on:
- 422 `SOURCE_NOT_ALLOWED` (details.field "url"): the host resolves to an address the admin
  may not reach (loopback/private need `PORTCULLIS_POOL_ALLOW_SOURCES`);
- 502 `SOURCE_UNREACHABLE`: no answer (DNS, refused, timeout, TLS) or a non-2xx status;
- 502 `SOURCE_TOO_LARGE`: more than `pool_source_max_bytes`;
- 502 `SOURCE_CONTENT_TYPE`: an answer that is not text (an image, octet-stream...).
A URL's user-info is sent as HTTP Basic credentials, never in a message.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from models import guarded_http
from models.settings import Settings
from pool.errors import PoolError

TEXT_TYPES = ("application/json", "application/csv", "application/xhtml+xml", "application/xml")
USER_AGENT = "Portcullis-pool/1 (+source fetch)"
ACCEPT = "text/plain, application/json, text/csv, text/html, */*;q=0.1"


@dataclass(frozen=True)
class Fetched:
    """A source's answer, decoded."""

    content: str
    content_type: str  # the media type alone, lower-cased ("" when the source sent none)


def media_type(header: str) -> tuple[str, str | None]:
    """(`type/subtype` lower-cased, charset or None) of a Content-Type header."""
    kind, *params = header.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return kind.strip().lower(), charset


def is_text(kind: str) -> bool:
    """Whether a list can be read from this media type ("" = not said: read it as text)."""
    return kind == "" or kind.startswith("text/") or kind in TEXT_TYPES or kind.endswith("+json")


def decode(body: bytes, charset: str | None) -> str:
    """The body as text: its charset if Python knows it, else UTF-8; bad bytes replaced."""
    encoding = "utf-8"
    if charset:
        with contextlib.suppress(LookupError):  # an unknown charset: read it as UTF-8
            encoding = codecs.lookup(charset).name
    return body.decode(encoding, errors="replace").removeprefix("\ufeff")


def basic_auth(url: str) -> dict[str, str]:
    """The `Authorization: Basic` header for a URL's user-info (`https://user:token@host/`),
    as browsers and curl send it; none without user-info."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return {}
    if username is None:
        return {}
    pair = f"{unquote(username)}:{unquote(password or '')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def fetch_source(settings: Settings, url: str) -> Fetched:
    """GET `url` under the pool's source policy; raises `PoolError` (see the module doc)."""
    timeout_s = settings.pool_source_timeout_ms / 1000
    headers = {"Accept": ACCEPT, "User-Agent": USER_AGENT, **basic_auth(url)}
    try:
        answer = guarded_http.request(
            "GET",
            url,
            headers=headers,
            body=None,
            allowed=settings.pool_allow_sources,
            max_bytes=settings.pool_source_max_bytes,
            connect_timeout=min(timeout_s, guarded_http.CONNECT_TIMEOUT_S),
            read_timeout=timeout_s,
            total_timeout=timeout_s,
            allow_setting="PORTCULLIS_POOL_ALLOW_SOURCES",
        )
    except guarded_http.OutboundRefused as exc:
        raise PoolError(422, "SOURCE_NOT_ALLOWED", f"url: {exc}", {"field": "url"}) from exc
    except guarded_http.AnswerTooLarge as exc:
        raise PoolError(502, "SOURCE_TOO_LARGE", f"the source's {exc}") from exc
    except guarded_http.OutboundError as exc:
        raise PoolError(502, "SOURCE_UNREACHABLE", str(exc)) from exc
    if not 200 <= answer.status < 300:
        raise PoolError(502, "SOURCE_UNREACHABLE", f"the source answered HTTP {answer.status}")
    header = next((v for k, v in answer.headers.items() if k.lower() == "content-type"), "")
    kind, charset = media_type(header)
    if not is_text(kind):
        raise PoolError(
            502,
            "SOURCE_CONTENT_TYPE",
            f"the source answered {kind}; a list must be text, JSON, CSV or HTML",
            {"content_type": kind},
        )
    return Fetched(decode(answer.body, charset), kind)
