"""`csv`: a header row naming the columns (ip/host/address, port, protocol/type, username,
password, country...) or header-less `host,port[,protocol]` rows; `,`, `;` or tab."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from pool.parsers.common import Candidate, candidate, unique
from pool.parsers.json_list import (
    HOST_FIELDS,
    PASSWORD_FIELDS,
    PROTOCOL_FIELDS,
    TAG_FIELDS,
    USER_FIELDS,
)

DELIMITERS = (",", ";", "\t")
SNIFF_ROWS = 50


def _delimiter(content: str) -> str | None:
    first = next((line for line in content.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else None


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def _cell(row: list[str], index: int | None) -> str | None:
    return row[index].strip() if index is not None and index < len(row) else None


def _rows(content: str) -> Iterator[Candidate | None]:
    delimiter = _delimiter(content)
    if delimiter is None:
        return
    rows = (row for row in csv.reader(io.StringIO(content), delimiter=delimiter) if row)
    first = next(rows, None)
    if first is None:
        return
    header = [cell.strip().lower().replace(" ", "_") for cell in first]
    host_at = _column(header, HOST_FIELDS)
    port_at = _column(header, ("port",))
    if host_at is None or port_at is None:  # no header: host,port[,protocol]
        for row in [first, *rows]:
            yield candidate(_cell(row, 0), _cell(row, 1), _cell(row, 2))
        return
    protocol_at = _column(header, PROTOCOL_FIELDS)
    user_at, password_at = _column(header, USER_FIELDS), _column(header, PASSWORD_FIELDS)
    tag_columns = {name: header.index(name) for name in TAG_FIELDS if name in header}
    for row in rows:
        tags = {name: _cell(row, at) for name, at in tag_columns.items()}
        yield candidate(
            _cell(row, host_at),
            _cell(row, port_at),
            _cell(row, protocol_at),
            _cell(row, user_at),
            _cell(row, password_at),
            tags,
        )


class CsvParser:
    name = "csv"

    def supports(self, content: str, content_type: str) -> bool:
        """Delimited rows, one of the first ones a proxy in its columns."""
        if content.lstrip()[:1] in ("[", "{", "<"):
            return False
        rows = _rows("\n".join(content.splitlines()[: SNIFF_ROWS + 1]))
        return any(found is not None for found in rows)

    def parse(self, content: str) -> Iterator[Candidate]:
        return unique(_rows(content))
