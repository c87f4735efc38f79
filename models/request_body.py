"""A request body as body-reading rules see it: decoded within a bound, parsed once (issue 18).

`inspect_body(raw, content_encoding, limit)` gives the `BodyFacts` rules match
(`models/rule_engine.py`), or a `BodyRefusal` the caller can act on:

- 413 `REQUEST_BODY_TOO_LARGE`: the body (or what it decodes to) is over `limit`;
- 415 `BODY_NOT_INSPECTABLE`: a `Content-Encoding` other than gzip / x-gzip /
  deflate / br (or several stacked), or a corrupt or truncated encoded body;
- 400 `BODY_NOT_INSPECTABLE`: a body that looks like JSON (its first character,
  after whitespace and a byte order mark, is `{` or `[`) but is not strict JSON:
  bad syntax, a name repeated in one object, `NaN`, a number out of range, a
  lone surrogate, or nesting deeper than the limit. Targets' parsers are often
  more lenient than ours or read a repeated name differently; such a body would
  reach them with the rules having seen no document at all, or another one.

Decoding never produces more than `limit + 1` bytes, however well the body
compresses. JSON is parsed with `models.json_limits.loads` (nesting limit,
I-JSON); a body that is not JSON has the document `NOT_JSON`; the text is
UTF-8 with invalid bytes as U+FFFD, for `bodyPattern`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.body_checks import NOT_JSON
from models.content_coding import DECODABLE, CodingError, codings, decode_bounded
from models.json_limits import loads
from models.rule_engine import BodyFacts

TOO_LARGE_CODE = "REQUEST_BODY_TOO_LARGE"
NOT_INSPECTABLE_CODE = "BODY_NOT_INSPECTABLE"
EMPTY = BodyFacts(document=NOT_JSON, text="")


@dataclass(frozen=True)
class BodyRefusal:
    """Why a body-reading proxy refuses a request body: status, machine code, message."""

    status: int
    code: str
    message: str
    details: dict = field(default_factory=dict)


def too_large(limit: int, size: int | None = None) -> BodyRefusal:
    """413: the body is over the inspection bound (`size` when announced)."""
    details: dict = {"limit": limit}
    if size is not None:
        details["size"] = size
    return BodyRefusal(
        413,
        TOO_LARGE_CODE,
        f"The request body is larger than {limit} bytes, the most this gateway reads to "
        "check this proxy's rules; it was not forwarded",
        details,
    )


def not_inspectable(reason: str) -> BodyRefusal:
    return BodyRefusal(
        415,
        NOT_INSPECTABLE_CODE,
        f"The request body cannot be checked against this proxy's rules ({reason}); "
        "send it unencoded or as gzip, deflate or br",
        {"reason": reason},
    )


def inspect_body(raw: bytes, content_encoding: str | None, limit: int) -> BodyFacts | BodyRefusal:
    """The facts of a complete request body, or why it is refused."""
    if len(raw) > limit:
        return too_large(limit, len(raw))
    body = decode(raw, content_encoding, limit)
    if isinstance(body, BodyRefusal):
        return body
    return strict_facts(body)


def facts(body: bytes) -> BodyFacts:
    """`body` (identity-encoded) parsed once: JSON document (or NOT_JSON) and text."""
    outcome = strict_facts(body)
    if isinstance(outcome, BodyRefusal):
        return BodyFacts(document=NOT_JSON, text=body.decode("utf-8", "replace"))
    return outcome


def strict_facts(body: bytes) -> BodyFacts | BodyRefusal:
    """`facts`, refusing a body that looks like JSON but is not strict JSON (see above)."""
    if not body:
        return EMPTY
    try:
        document = loads(body, unique_names=True)
    except ValueError as error:
        if looks_like_json(body):
            return not_json(error)
        document = NOT_JSON
    return BodyFacts(document=document, text=body.decode("utf-8", "replace"))


# Byte order marks (UTF-8, -16, -32), NUL (of UTF-16/32 text) and JSON's whitespace.
_LEADING = b"\xef\xbb\xbf\xfe\xff\x00 \t\r\n"


def looks_like_json(body: bytes) -> bool:
    """Whether a parser would take `body` for a JSON object or array."""
    return body.lstrip(_LEADING)[:1] in (b"{", b"[")


def not_json(error: ValueError) -> BodyRefusal:
    reason = str(error).splitlines()[0][:200]
    return BodyRefusal(
        400,
        NOT_INSPECTABLE_CODE,
        f"The request body looks like JSON but is not strict JSON ({reason}); this proxy's "
        "rules cannot check it, so it was not forwarded",
        {"reason": reason},
    )


def decode(raw: bytes, content_encoding: str | None, limit: int) -> bytes | BodyRefusal:
    """`raw` without its content coding, never more than `limit` bytes."""
    names = codings(content_encoding)
    if not names:
        return raw
    if len(names) > 1:
        return not_inspectable(f"stacked content encodings {content_encoding!r}")
    coding = names[0]
    if coding not in DECODABLE:
        return not_inspectable(f"content encoding {coding!r}")
    try:
        out = decode_bounded(raw, coding, limit)
    except CodingError as error:
        return not_inspectable(f"the {coding} body is corrupt or truncated: {error}")
    return too_large(limit) if out is None else out
