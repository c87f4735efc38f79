"""Checks on JSON fields of a request body, shared by rules and meters.

A check names a field by a path (models/json_paths.py) and tests the values it
selects: `valuePattern` (an RE2 pattern a string value must match), `equals`
(JSON equality, see `same_json`), or neither (the path selects something).
With presence `present` the check holds if some selected value passes; with
`absent` it holds if none does. A body that is absent or not JSON selects
nothing (`NOT_JSON`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models.json_paths import JsonPath, parse_path, select
from models.patterns import compile_pattern


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


NOT_JSON: Any = _Sentinel("NOT_JSON")  # the document of an absent or non-JSON body
ANY_VALUE: Any = _Sentinel("ANY_VALUE")  # `equals` of a check with neither equals nor pattern


@dataclass(frozen=True)
class BodyCheck:
    """A JSON body field tested by `pattern`, `equals`, or just for being there."""

    path: JsonPath
    equals: Any = ANY_VALUE
    pattern: object | None = None
    present: bool = True

    def holds(self, document: Any) -> bool:
        """Whether some selected value passes (presence present) or none does (absent)."""
        return self._found(document) == self.present

    def _found(self, document: Any) -> bool:
        if document is NOT_JSON:
            return False
        for value in select(document, self.path):
            if self.pattern is not None:
                if isinstance(value, str) and self.pattern.search(value):
                    return True
            elif self.equals is ANY_VALUE or same_json(value, self.equals):
                return True
        return False


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`, `1` is `1.0`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def compile_body_checks(checks: Sequence[dict], flags: str = "") -> tuple[BodyCheck, ...]:
    """Stored checks (`{path, valuePattern?, equals?, presence?}`) ready to test.

    Raises JsonPathError (bad path) or PatternError (bad pattern).
    """
    compiled = []
    for check in checks or []:
        path = parse_path(check["path"])
        present = check.get("presence", "present") != "absent"
        if check.get("valuePattern") is not None:
            pattern = compile_pattern(check["valuePattern"], flags)
            compiled.append(BodyCheck(path, pattern=pattern, present=present))
        else:
            equals = check.get("equals", ANY_VALUE)
            compiled.append(BodyCheck(path, equals=equals, present=present))
    return tuple(compiled)
