"""Parsing JSON from outside the gateway with a nesting limit.

Python's parser recurses once per level, and so does everything that walks
the result afterwards (validation, redaction, serialisation): a body such as
`'[' * 10000 + ']' * 10000` would end in `RecursionError`. Every JSON body the
gateway reads from a caller, a target or an identity provider goes through
`loads`, which measures the nesting before parsing and refuses anything deeper
than `MAX_DEPTH`.
"""

from __future__ import annotations

import json
import re

MAX_DEPTH = 64
# A JSON string, escapes included; brackets inside strings do not nest.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonTooDeep(ValueError):
    """The document nests arrays and objects more deeply than allowed."""

    def __init__(self, max_depth: int):
        super().__init__(f"JSON nests deeper than {max_depth} levels")
        self.max_depth = max_depth


def nesting_depth_exceeds(raw: bytes, max_depth: int) -> bool:
    """Whether `raw` opens more than `max_depth` arrays or objects inside one another.

    Strings are removed, every bracket becomes `[` or `]`, then each pass of
    `replace` removes the innermost pairs: the passes needed equal the depth.
    Each pass runs at C speed, so the check costs little beside the parse.
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False  # too few openings to nest that deep
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    brackets = brackets.replace(b"{", b"[").replace(b"}", b"]")
    for _ in range(max_depth):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return False  # balanced and done, or unbalanced: the parser will say so
        brackets = shorter
    return b"[]" in brackets


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH):
    """`json.loads`, refusing documents nested deeper than `max_depth` with `JsonTooDeep`.

    Other errors are `json.JSONDecodeError` or `UnicodeDecodeError`, both
    `ValueError`s, as with `json.loads`.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if nesting_depth_exceeds(data, max_depth):
        raise JsonTooDeep(max_depth)
    return json.loads(raw)
