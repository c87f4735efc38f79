"""`plaintext`: one proxy a line (`ip:port`, `[v6]:port`, `scheme://user:pass@host:port`,
`host:port:user:pass`, or `host port`), `#` and `//` comments, blank lines, and trailing
words after the address (a country, a speed; also after a `,` `;` or `|` unless the entry
has credentials) ignored."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pool.parsers.common import Candidate, candidate, parse_endpoint, unique

SNIFF_LINES = 200
SEPARATORS = re.compile(r"[,;|]")


def _line(line: str) -> Candidate | None:
    text = line.strip()
    if not text or text.startswith(("#", "//", ";")):
        return None
    words = text.split()
    first = words[0]
    if "@" not in first:  # "1.2.3.4:8080,US" / "...|elite": the address ends at a separator
        first = SEPARATORS.split(first, 1)[0]
    found = parse_endpoint(first)
    if found is None and len(words) >= 2 and words[1].isdigit():
        found = candidate(words[0], words[1])  # "1.2.3.4 8080"
    return found


class PlaintextParser:
    name = "plaintext"

    def supports(self, content: str, content_type: str) -> bool:
        """Some line among the first ones is a proxy."""
        lines = [line for line in content.splitlines()[: SNIFF_LINES * 4] if line.strip()]
        return any(_line(line) is not None for line in lines[:SNIFF_LINES])

    def parse(self, content: str) -> Iterator[Candidate]:
        return unique(_line(line) for line in content.splitlines())
