"""`html`: tables with ip/port columns (a header row names them, or an address cell
followed by a port cell), and `[scheme://]ip:port` written anywhere in the page's text
(IP addresses only; credentials are not read from pages)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from html.parser import HTMLParser

from pool.parsers.common import Candidate, candidate, parse_endpoint, unique
from pool.parsers.json_list import HOST_FIELDS, PROTOCOL_FIELDS, TAG_FIELDS

# Addresses written in text: [scheme://](IPv4|[IPv6]):port. No user-info: a pattern for it
# backtracks badly on long runs of "a:a:a..." (a page is up to pool_source_max_bytes), and
# pages publishing credentials are rare; plaintext/json/csv lists carry them.
IN_TEXT = re.compile(
    r"(?:\b[a-z0-9]{4,7}://)?(?:\b\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]{2,45}\]):\d{1,5}\b",
    re.IGNORECASE,
)
MARKERS = ("<html", "<table", "<tr", "<body", "<!doctype html")


class _Page(HTMLParser):
    """Collects the tables' rows (cell texts) and the page's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[list[str], bool]] = []  # (cells, is a header row)
        self.text: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._header = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "tr":
            self._row, self._header = [], False
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._header = self._header or tag == "th"
        self.text.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append((self._row, self._header))
            self._row = None
        self.text.append(" ")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._cell is not None:
            self._cell.append(data)
        self.text.append(data)


def _header_key(cell: str) -> str:
    return re.sub(r"[^a-z0-9]", "", cell.lower())


def _table_rows(rows: list[tuple[list[str], bool]]) -> Iterator[Candidate | None]:
    columns: dict[str, int] = {}
    for cells, is_header in rows:
        keys = [_header_key(cell) for cell in cells]
        host_at = next((i for i, k in enumerate(keys) if k in HOST_FIELDS), None)
        if is_header or (host_at is not None and "port" in keys):
            columns = {}
            if host_at is not None and "port" in keys:
                columns = {"host": host_at, "port": keys.index("port")}
                for name in (*PROTOCOL_FIELDS, "https", *TAG_FIELDS):
                    if name in keys and name not in columns:
                        columns[name] = keys.index(name)
            continue
        yield from _data_row(cells, columns)


def _data_row(cells: list[str], columns: dict[str, int]) -> Iterator[Candidate | None]:
    def cell(name: str) -> str | None:
        at = columns.get(name)
        return cells[at] if at is not None and at < len(cells) else None

    if columns:
        protocol = next((cell(n) for n in PROTOCOL_FIELDS if cell(n)), None)
        if protocol is None and (cell("https") or "").lower() == "yes":
            protocol = "https"
        tags = {name: cell(name) for name in TAG_FIELDS if cell(name)}
        yield candidate(cell("host"), cell("port"), protocol, tags=tags)
        return
    for at, text in enumerate(cells[:-1]):  # no header: an address cell, then its port
        if _is_address(text):
            yield candidate(text, cells[at + 1])
            return


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return False
    return True


class HtmlParser:
    name = "html"

    def supports(self, content: str, content_type: str) -> bool:
        """An HTML page (by its type or its tags) naming at least one proxy."""
        head = content[:4096].lower()
        if "html" not in content_type and not any(m in head for m in MARKERS):
            return False
        return next(iter(self.parse(content)), None) is not None

    def parse(self, content: str) -> Iterator[Candidate]:
        page = _Page()
        page.feed(content)
        page.close()
        in_text = (parse_endpoint(m.group(0)) for m in IN_TEXT.finditer("".join(page.text)))
        return unique(_chain(_table_rows(page.rows), in_text))


def _chain(*parts) -> Iterator:
    for part in parts:
        yield from part
