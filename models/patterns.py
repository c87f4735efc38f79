"""Rule regular expressions, compiled with RE2.

RE2 matches in linear time, so a tenant's pattern can never stall the data
plane's event loop with catastrophic backtracking. It has no backreferences
or lookaround; such patterns are refused at write time.
"""

from __future__ import annotations

import re2
from re2 import _re2

_UNANCHORED = _re2.RE2.Anchor.UNANCHORED

# JavaScript-style flags as the hosted product documents them. `i`, `m`, `s`
# change matching; `g` and `u` are accepted and have no effect (a rule is a
# yes/no test and RE2 is always Unicode-aware).
FLAG_PREFIXES = {"i": "i", "m": "m", "s": "s"}
IGNORED_FLAGS = {"g", "u"}
ALLOWED_FLAGS = set(FLAG_PREFIXES) | IGNORED_FLAGS


class PatternError(ValueError):
    """A pattern or flag string that cannot be used."""


def check_flags(flags: str) -> str:
    """Validate and normalise a `regexFlags` string (unique, sorted)."""
    unknown = sorted(set(flags) - ALLOWED_FLAGS)
    if unknown:
        raise PatternError(
            f"unsupported regex flag(s) {''.join(unknown)!r}; use any of "
            f"{''.join(sorted(ALLOWED_FLAGS))!r}"
        )
    return "".join(sorted(set(flags)))


class Pattern:
    """A compiled pattern that answers one question: is it found somewhere in a text?

    google-re2's own `search` builds a match object with character offsets,
    several microseconds a call in Python; rules and meters only need yes or no,
    so this asks the RE2 object the wrapper compiled directly (`Match`, about
    0.7 microseconds). `text` must be valid UTF-8 text (callers replace lone
    surrogates first, see models/rule_engine.py `matchable`).
    """

    __slots__ = ("_regexp", "pattern")

    def __init__(self, compiled: re2._Regexp):
        self.pattern: str = compiled.pattern
        self._regexp = compiled._regexp  # google-re2's RE2 object (pybind11)

    def search(self, text: str) -> bool:
        data = text.encode()
        return self._regexp.Match(_UNANCHORED, data, 0, len(data))[0][0] >= 0

    def __eq__(self, other: object) -> bool:
        # The source carries the flags inline and the options never vary: same source, same
        # pattern (compiled rules and meters compare equal across snapshots).
        return isinstance(other, Pattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


def compile_pattern(pattern: str, flags: str = "") -> Pattern:
    """Compile `pattern` with `flags`; raise PatternError with RE2's reason if invalid."""
    inline = "".join(FLAG_PREFIXES[f] for f in sorted(set(flags)) if f in FLAG_PREFIXES)
    source = f"(?{inline}){pattern}" if inline else pattern
    options = re2.Options()
    options.log_errors = False
    try:
        return Pattern(re2.compile(source, options))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "unknown error"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"invalid regular expression: {reason}") from exc
