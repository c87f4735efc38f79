"""Rule regular expressions, compiled with RE2.

RE2 matches in linear time, so a tenant's pattern can never stall the data
plane's event loop with catastrophic backtracking. It has no backreferences
or lookaround; such patterns are refused at write time.
"""

from __future__ import annotations

import re2

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


def compile_pattern(pattern: str, flags: str = ""):
    """Compile `pattern` with `flags`; raise PatternError with RE2's reason if invalid."""
    inline = "".join(FLAG_PREFIXES[f] for f in sorted(set(flags)) if f in FLAG_PREFIXES)
    source = f"(?{inline}){pattern}" if inline else pattern
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(source, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "unknown error"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"invalid regular expression: {reason}") from exc
