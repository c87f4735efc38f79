"""Parser plugins: each turns a source's content into proxy candidates.

A parser has `name`, `supports(content, content_type) -> bool` and
`parse(content) -> Iterator[Candidate]`. `PARSERS` is the registry in the order
`detect()` tries them: the most specific format first (json, csv, html), plaintext last.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from pool.parsers.common import Candidate
from pool.parsers.csv_list import CsvParser
from pool.parsers.html_page import HtmlParser
from pool.parsers.json_list import JsonParser
from pool.parsers.plaintext import PlaintextParser

__all__ = ["PARSERS", "Candidate", "Parser", "detect"]


class Parser(Protocol):
    name: str

    def supports(self, content: str, content_type: str) -> bool: ...

    def parse(self, content: str) -> Iterator[Candidate]: ...


PARSERS: dict[str, Parser] = {
    parser.name: parser for parser in (JsonParser(), CsvParser(), HtmlParser(), PlaintextParser())
}


def detect(content: str, content_type: str = "") -> Parser | None:
    """The first registered parser that supports `content`, or None."""
    for parser in PARSERS.values():
        if parser.supports(content, content_type.lower()):
            return parser
    return None
