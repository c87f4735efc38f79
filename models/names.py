"""The rule for names and labels people give things: no invisible control characters.

A name is shown in the web admin, in API answers, in logs and in terminals. Control
characters in it can forge log lines (CR, LF), cut strings short in C code (NUL), drive a
terminal (ESC), or reorder what a reader sees (bidi overrides, "Trojan Source"). Refused:

- C0 controls U+0000-U+001F (NUL, tab, CR, LF, ESC, ...), DEL U+007F, C1 controls
  U+0080-U+009F: Unicode category Cc;
- the line and paragraph separators U+2028 and U+2029;
- the bidi embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069.

Everything else is allowed, including right-to-left text, its marks (U+200E, U+200F), the
zero-width joiners that some scripts and emoji need, and spaces.
"""

from __future__ import annotations

import re

_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MESSAGE = "Cannot contain control characters, line separators or bidi overrides"


def refused_character(value: str) -> str | None:
    """The first character `value` may not hold in a name, as `U+XXXX`; None if it is fine."""
    match = _REFUSED.search(value)
    return None if match is None else f"U+{ord(match.group()):04X}"


def name_problem(value: str) -> str | None:
    """A message saying why `value` cannot be a name or label, or None."""
    found = refused_character(value)
    return None if found is None else f"{MESSAGE} (found {found})."
