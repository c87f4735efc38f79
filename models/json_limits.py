"""Parsing JSON from outside the gateway with a nesting limit and standard numbers.

Python's parser recurses once per level, and so does everything that walks
the result afterwards (validation, redaction, serialisation): a body such as
`'[' * 10000 + ']' * 10000` would end in `RecursionError`. Every JSON body the
gateway reads from a caller, a target or an identity provider goes through
`loads`, which measures the nesting before parsing and refuses anything deeper
than `MAX_DEPTH`.

`loads` also keeps to I-JSON (RFC 7493): `NaN`, `Infinity`, numbers too large
for a float (`1e400`) and strings that are not Unicode (lone surrogates, raw or
as `\ud800` escapes) are refused, so whatever it returns can be stored and
written back out as valid JSON.
"""

from __future__ import annotations

import array
import itertools
import json
import math
import re

MAX_DEPTH = 64
# A JSON string, escapes included; brackets inside strings do not nest. An unterminated
# string runs to the end of the input (possessive, so each string is scanned once and
# the search stays linear however many quotes the input holds).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Openings become 1 and closings -1 as signed bytes.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
# A `\uD800`-`\uDFFF` escape: only then can a parsed string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonTooDeep(ValueError):
    """The document nests arrays and objects more deeply than allowed."""

    def __init__(self, max_depth: int):
        super().__init__(f"JSON nests deeper than {max_depth} levels")
        self.max_depth = max_depth


def nesting_depth_exceeds(raw: bytes, max_depth: int) -> bool:
    """Whether the UTF-8 JSON text `raw` opens more than `max_depth` arrays or objects
    inside one another.

    Strings are removed, then every opening bracket counts +1 and every closing
    one -1: the deepest running total is the nesting depth. The work is done by
    C loops (`re`, `translate`, `accumulate`), one step per bracket. Unbalanced
    input is judged the same way: the parser would dive into every opening
    before failing at the end, so it must not exceed the limit either.
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False  # too few openings to nest that deep
    steps = _STRING.sub(b"", raw).translate(_STEPS, _NOT_BRACKETS)
    return max(itertools.accumulate(array.array("b", steps)), default=0) > max_depth


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is too large")
    return value


def _check_unicode(value) -> None:
    """Raise ValueError if a string in `value` holds a lone surrogate (depth already bounded)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("JSON strings must be valid Unicode (a lone surrogate)") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key)
            _check_unicode(item)
    elif isinstance(value, list):
        for item in value:
            _check_unicode(item)


def _unique_names(pairs: list[tuple[str, object]]) -> dict:
    """An object whose names are all different (I-JSON); a repeated name raises ValueError.

    Parsers disagree on which of two equal names wins (Python keeps the last, many
    keep the first), so a check made on one reading could be bypassed by the other.
    """
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        name = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise ValueError(f"the name {name[:40]!r} appears more than once in an object")
    return document


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH, unique_names: bool = False):
    """`json.loads`, refusing documents nested deeper than `max_depth` with `JsonTooDeep`.

    Bytes are decoded as `json.loads` decodes them (UTF-8, -16 or -32). Other
    errors are `json.JSONDecodeError`, `UnicodeError` or a plain `ValueError`
    (NaN, Infinity, a number out of range, a lone surrogate, and with
    `unique_names` a name repeated in one object), all `ValueError`s.
    """
    text = raw.decode(json.detect_encoding(raw)) if isinstance(raw, bytes) else raw
    if nesting_depth_exceeds(text.encode("utf-8", "surrogatepass"), max_depth):
        raise JsonTooDeep(max_depth)
    value = json.loads(
        text,
        parse_constant=_refuse_constant,
        parse_float=_finite_float,
        object_pairs_hook=_unique_names if unique_names else None,
    )
    if _SURROGATE_ESCAPE.search(text) or not isinstance(raw, bytes):
        _check_unicode(value)
    return value
