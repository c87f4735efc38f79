"""JSON paths: the one place that parses them, reads values with them and filters with them.

A path names fields of a JSON document, one segment per level, segments separated by
dots: `usage.total_tokens`, `card.number`, `items.*.sku`.

- A segment matches an object key of the same text. On an array, a segment written as a
  non-negative decimal integer (`items.0.sku`) matches the item at that index; any other
  segment matches nothing in an array.
- `*` alone as a segment matches every item of an array and every key of an object.
- A backslash escapes the next character: `\\.` is a dot inside a key (`a\\.b` is the
  one key `"a.b"`), `\\*` a literal star key, `\\\\` a backslash. No other escapes exist.
- Refused (JsonPathError, a ValueError whose message says what is wrong): an empty path,
  an empty segment (two dots in a row, a dot at the start or end), a dangling or unknown
  escape, `*` mixed with other characters in one segment, more than MAX_SEGMENTS
  segments or MAX_LENGTH characters.

Everything here is pure: no I/O, and the input document is never modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 512
MAX_SEGMENTS = 32
_ESCAPABLE = {".", "*", "\\"}


class JsonPathError(ValueError):
    """A path text that cannot be used; the message says why and where."""


class _Wildcard:
    """The `*` segment: every array item and every object key."""

    _instance: _Wildcard | None = None

    def __new__(cls) -> _Wildcard:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "WILDCARD"


WILDCARD = _Wildcard()
Segment = str | _Wildcard


@dataclass(frozen=True)
class JsonPath:
    """A parsed path: its segments (strings, or WILDCARD) and the text it came from."""

    segments: tuple[Segment, ...]
    text: str

    def __str__(self) -> str:
        return self.text


def parse_path(text: Any) -> JsonPath:
    """Parse a path text such as `items.*.sku`; raise JsonPathError if it is not one."""
    if not isinstance(text, str):
        raise JsonPathError("a JSON path must be a string")
    if not text:
        raise JsonPathError("a JSON path must not be empty")
    if len(text) > MAX_LENGTH:
        raise JsonPathError(f"JSON path is longer than {MAX_LENGTH} characters")
    segments: list[Segment] = []
    current: list[str] = []
    bare_star = False  # the segment holds an unescaped `*`
    index = 0
    while index <= len(text):
        char = text[index] if index < len(text) else None
        if char is None or char == ".":
            segment = "".join(current)
            if not segment:
                raise JsonPathError(
                    f"JSON path {text!r} has an empty segment at character {index + 1} "
                    "(two dots in a row, or a dot at the start or end)"
                )
            if bare_star and segment != "*":
                raise JsonPathError(
                    f"JSON path {text!r}: segment {segment!r} mixes * with other characters; "
                    "* must be a whole segment (write \\* for a literal star)"
                )
            segments.append(WILDCARD if bare_star else segment)
            current, bare_star = [], False
        elif char == "\\":
            escaped = text[index + 1] if index + 1 < len(text) else None
            if escaped is None:
                raise JsonPathError(f"JSON path {text!r} ends with a lone backslash")
            if escaped not in _ESCAPABLE:
                raise JsonPathError(
                    f"JSON path {text!r}: '\\{escaped}' is not an escape "
                    "(only \\. \\* and \\\\ are)"
                )
            current.append(escaped)
            index += 1
        else:
            current.append(char)
            bare_star = bare_star or char == "*"
        index += 1
    if len(segments) > MAX_SEGMENTS:
        raise JsonPathError(f"JSON path {text!r} has more than {MAX_SEGMENTS} segments")
    return JsonPath(tuple(segments), text)


def parse_paths(texts: Any) -> tuple[JsonPath, ...]:
    """Parse a list of path texts; the error names the failing item as `[index]`."""
    if not isinstance(texts, (list, tuple)):
        raise JsonPathError("expected a list of JSON paths")
    parsed = []
    for position, text in enumerate(texts):
        try:
            parsed.append(parse_path(text))
        except JsonPathError as error:
            raise JsonPathError(f"[{position}]: {error}") from None
    return tuple(parsed)


def format_segments(segments: Iterable[Segment]) -> str:
    """The path text for `segments` (escaping dots, stars and backslashes in keys)."""
    parts = []
    for segment in segments:
        if segment is WILDCARD:
            parts.append("*")
        else:
            assert isinstance(segment, str)
            parts.append("".join("\\" + c if c in _ESCAPABLE else c for c in segment))
    return ".".join(parts)


def _matches_key(segment: Segment, key: str) -> bool:
    return segment is WILDCARD or segment == key


def _matches_index(segment: Segment, index: int) -> bool:
    if segment is WILDCARD:
        return True
    assert isinstance(segment, str)
    return segment.isascii() and segment.isdigit() and int(segment) == index


def select(document: Any, path: JsonPath) -> list[Any]:
    """Every value `path` selects in `document`, in document order (empty if none)."""
    found: list[Any] = []
    _select(document, path.segments, found)
    return found


def _select(value: Any, segments: Sequence[Segment], found: list[Any]) -> None:
    if not segments:
        found.append(value)
        return
    head, rest = segments[0], segments[1:]
    if isinstance(value, dict):
        if head is WILDCARD:
            for child in value.values():
                _select(child, rest, found)
        elif head in value:
            _select(value[head], rest, found)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            if _matches_index(head, index):
                _select(child, rest, found)


_Tails = list[tuple[Segment, ...]]


def _tails_for_key(tails: _Tails, key: str) -> _Tails:
    return [tail[1:] for tail in tails if _matches_key(tail[0], key)]


def _tails_for_index(tails: _Tails, index: int) -> _Tails:
    return [tail[1:] for tail in tails if _matches_index(tail[0], index)]


def retain(document: Any, paths: Sequence[JsonPath]) -> Any:
    """`document` keeping only the fields `paths` select, with the objects and arrays on the
    way to them.

    A selected field is kept whole. An object or array on the way to a selected field is
    kept, holding only what the paths select inside it (possibly nothing, e.g. `{}` for an
    array item that lacks the field, so array items keep their positions). A value where a
    path expects an object or array (a string at `card` for `card.number`) is dropped.
    With no paths, or a root that is neither an object nor an array, the result is None.
    """
    tails: _Tails = [path.segments for path in paths]
    if not tails:
        return None
    result = _retain(document, tails)
    return None if result is _DROP else result


_DROP = object()


def _retain(value: Any, tails: _Tails) -> Any:
    if any(not tail for tail in tails):
        return value
    if isinstance(value, dict):
        kept = {}
        for key, child in value.items():
            child_tails = _tails_for_key(tails, key)
            if child_tails:
                filtered = _retain(child, child_tails)
                if filtered is not _DROP:
                    kept[key] = filtered
        return kept
    if isinstance(value, list):
        items = []
        for index, child in enumerate(value):
            child_tails = _tails_for_index(tails, index)
            if child_tails:
                filtered = _retain(child, child_tails)
                if filtered is not _DROP:
                    items.append(filtered)
        return items
    return _DROP


def destroy(document: Any, paths: Sequence[JsonPath]) -> Any:
    """`document` without the fields `paths` select (object keys, or array items, which
    removes them from the array); everything else is unchanged. Paths that select nothing
    change nothing."""
    tails: _Tails = [path.segments for path in paths]
    return _destroy(document, tails) if tails else document


def _destroy(value: Any, tails: _Tails) -> Any:
    if isinstance(value, dict):
        kept = {}
        for key, child in value.items():
            child_tails = _tails_for_key(tails, key)
            if any(not tail for tail in child_tails):
                continue
            kept[key] = _destroy(child, child_tails) if child_tails else child
        return kept
    if isinstance(value, list):
        items = []
        for index, child in enumerate(value):
            child_tails = _tails_for_index(tails, index)
            if any(not tail for tail in child_tails):
                continue
            items.append(_destroy(child, child_tails) if child_tails else child)
        return items
    return value
