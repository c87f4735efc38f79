"""Request head checks: size limits (431 above them) and control characters in values (400).

The limits are mitmproxy options (declared by `addons.protocol_guard`):

- `portcullis_max_header_bytes`: the request head as sent (request line and
  header fields), default 64 KiB;
- `portcullis_max_header_count`: header fields, default 100;
- `portcullis_max_header_field_bytes`: one field, name and value, default 16 KiB.

`protocol_guard` enforces the total while an HTTP/1 head is still arriving, so
no more than the limit (plus one read) is ever buffered; `check` is the cheap
test of a complete head, run by the route stage for every request (and the only
one for HTTP/2, whose heads arrive in frames mitmproxy assembles itself).

A header value may hold visible characters, spaces, tabs and bytes >= 0x80
(RFC 9110 5.5), nothing else: a NUL or other control character is refused
with 400, since no upstream client would send it on (aiohttp raises). A
method must be a token (400 otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mitmproxy import exceptions, http

from addons.responses import DENIED, proxy_error

CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 5.6.2: what a method may be
TOO_LARGE = 431
CODE = "REQUEST_HEADER_FIELDS_TOO_LARGE"
OPTIONS = {
    # option: (default, what it limits)
    "portcullis_max_header_bytes": (64 * 1024, "Largest request head in bytes (431 above)."),
    "portcullis_max_header_count": (100, "Most header fields in a request (431 above)."),
    "portcullis_max_header_field_bytes": (
        16 * 1024,
        "Largest single header field, name and value, in bytes (431 above).",
    ),
}


@dataclass(frozen=True)
class Exceeded:
    """Which limit a request head is over, to tell the caller."""

    option: str
    limit: int
    message: str

    def response(self, request_id: str | None) -> http.Response:
        return proxy_error(
            TOO_LARGE,
            DENIED,
            CODE,
            self.message,
            {"option": self.option, "limit": self.limit},
            request_id,
        )


@dataclass(frozen=True)
class HeaderLimits:
    max_bytes: int
    max_count: int
    max_field_bytes: int

    @classmethod
    def from_options(cls, options) -> HeaderLimits:
        return cls(
            options.portcullis_max_header_bytes,
            options.portcullis_max_header_count,
            options.portcullis_max_header_field_bytes,
        )

    @classmethod
    def configured(cls, options) -> HeaderLimits:
        """The limits as `options` last set them: read once per configuration (`remember`),
        not per request (an option lookup costs about a microsecond)."""
        return _configured or cls.from_options(options)

    def head_too_large(self) -> Exceeded:
        return Exceeded(
            "portcullis_max_header_bytes",
            self.max_bytes,
            f"Request headers are larger than {self.max_bytes} bytes",
        )

    def check(
        self, request_line_bytes: int, fields: Sequence[tuple[bytes, bytes]]
    ) -> Exceeded | None:
        """The first limit a complete head is over, or None."""
        if len(fields) > self.max_count:
            return Exceeded(
                "portcullis_max_header_count",
                self.max_count,
                f"Request has more than {self.max_count} header fields",
            )
        total = request_line_bytes + 2
        for name, value in fields:
            size = len(name) + len(value)
            if size > self.max_field_bytes:
                return Exceeded(
                    "portcullis_max_header_field_bytes",
                    self.max_field_bytes,
                    f"A request header field is larger than {self.max_field_bytes} bytes",
                )
            total += size + 4  # ": " and CRLF
        return self.head_too_large() if total > self.max_bytes else None

    def check_request(self, request: http.Request) -> Exceeded | None:
        """`check` for a request mitmproxy has parsed (HTTP/1 or HTTP/2)."""
        line = len(request.data.method) + len(request.data.path) + len(request.data.http_version)
        return self.check(line + 4, request.headers.fields)


def control_character_in(fields: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The name of the first header field whose value holds a control character, or None."""
    for name, value in fields:
        if CONTROL.search(value):
            return name.decode("ascii", "backslashreplace")
    return None


def bad_method(method: bytes) -> bool:
    """Whether `method` is not an RFC 9110 token (mitmproxy accepts any bytes there)."""
    return TOKEN.fullmatch(method) is None


def validate(options, updated: set[str]) -> None:
    """Refuse limits that are not positive, or a field limit above the head limit."""
    for name in OPTIONS:
        if name in updated and getattr(options, name) < 1:
            raise exceptions.OptionsError(f"{name} must be positive")
    pair = {"portcullis_max_header_field_bytes", "portcullis_max_header_bytes"}
    # Only when one of the two changed: mitmproxy's rollback re-sends the options that
    # failed, and a check of values nobody changed would fail it again, without end.
    if (
        updated & pair
        and options.portcullis_max_header_field_bytes > options.portcullis_max_header_bytes
    ):
        raise exceptions.OptionsError(
            "portcullis_max_header_field_bytes must not exceed portcullis_max_header_bytes"
        )


_configured: HeaderLimits | None = None


def remember(options) -> None:
    """Keep the limits `options` hold now for `HeaderLimits.configured` (after `validate`)."""
    global _configured
    _configured = HeaderLimits.from_options(options)
