"""Redaction for request logs: credentials, cookies and secret-looking fields never stored."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from functools import lru_cache

from models.json_limits import MAX_DEPTH, nesting_depth_exceeds

REDACTED = "[REDACTED]"
# A JSON body too deep to parse cannot have its sensitive fields found: none of it is kept.
TOO_DEEP = f"[REDACTED: JSON nested deeper than {MAX_DEPTH} levels]"
SENSITIVE_NAME = re.compile(
    r"(?i)(authorization|cookie|token|secret|password|passwd|api[-_]?key|session|credential|signature)"
)


@lru_cache(maxsize=4096)
def name_facts(name: str) -> tuple[str, bool]:
    """`name` in lower case, and whether it looks sensitive (names repeat: cached)."""
    return name.lower(), SENSITIVE_NAME.search(name) is not None


@lru_cache(maxsize=4096)
def raw_name_facts(name: bytes) -> tuple[str, bool]:
    """`name_facts` of a raw header name, decoded the way mitmproxy decodes it."""
    return name_facts(name.decode("utf-8", "surrogateescape"))


def redact_pairs(pairs: Iterable[tuple[str, str]], also: set[str] = frozenset()) -> dict[str, str]:
    """Name → value (lower-case names, last value wins), sensitive values replaced."""
    redacted = {}
    for name, value in pairs:
        lower, sensitive = name_facts(name)
        redacted[lower] = REDACTED if sensitive or lower in also else value
    return redacted


def redact_fields(
    fields: Iterable[tuple[bytes, bytes]],
    secrets: Iterable[str] = (),
    also: set[str] = frozenset(),
) -> dict[str, str]:
    """`redact_pairs(fields decoded as mitmproxy does, also)`, then `redact_text` of each
    value with `secrets`: one pass, no intermediate lists."""
    redacted = {}
    for name, value in fields:
        lower, sensitive = raw_name_facts(name)
        hidden = sensitive or lower in also
        text = REDACTED if hidden else value.decode("utf-8", "surrogateescape")
        redacted[lower] = redact_text(text, secrets) if secrets else text
    return redacted


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _redact_json(value):
    if isinstance(value, dict):
        return {
            k: REDACTED if SENSITIVE_NAME.search(str(k)) else _redact_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


def bounded_body(raw: bytes | None, limit: int, secrets: Iterable[str]) -> str | None:
    """At most `limit` bytes of a body as text: JSON with sensitive fields redacted.

    Never raises for any body: text nested deeper than `MAX_DEPTH` is replaced
    by `TOO_DEEP`, other text is kept with the `secrets` taken out.
    """
    if not raw:
        return None
    truncated = len(raw) > limit
    # NUL becomes U+FFFD like undecodable bytes: no store keeps NUL in text (PostgreSQL refuses it).
    text = raw[:limit].decode("utf-8", "replace").replace("\x00", "\ufffd")
    if not truncated:
        if nesting_depth_exceeds(text.encode("utf-8", "surrogatepass"), MAX_DEPTH):
            return TOO_DEEP
        # Python's lenient parser (NaN, lone surrogates): any JSON a target might read.
        with contextlib.suppress(ValueError):
            text = json.dumps(_redact_json(json.loads(text)))
    text = redact_text(text, secrets)
    return text + "…[truncated]" if truncated else text
