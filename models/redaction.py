"""Redaction for request logs: credentials, cookies and secret-looking fields never stored."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable

from models.json_limits import MAX_DEPTH, nesting_depth_exceeds

REDACTED = "[REDACTED]"
# A JSON body too deep to parse cannot have its sensitive fields found: none of it is kept.
TOO_DEEP = f"[REDACTED: JSON nested deeper than {MAX_DEPTH} levels]"
SENSITIVE_NAME = re.compile(
    r"(?i)(authorization|cookie|token|secret|password|passwd|api[-_]?key|session|credential|signature)"
)


def redact_pairs(pairs: Iterable[tuple[str, str]], also: set[str] = frozenset()) -> dict[str, str]:
    """Name → value (lower-case names, last value wins), sensitive values replaced."""
    return {
        name.lower(): REDACTED if SENSITIVE_NAME.search(name) or name.lower() in also else value
        for name, value in pairs
    }


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
