"""`json`: a list of objects or strings, bare or wrapped under a common key
(`data`, `proxies`, `items`, `result(s)`, `list`), with common field names."""

from __future__ import annotations

from collections.abc import Iterator

from models.json_limits import loads
from pool.parsers.common import Candidate, candidate, parse_endpoint, unique

WRAPPERS = ("data", "proxies", "items", "result", "results", "list", "proxy_list")
HOST_FIELDS = ("ip", "host", "address", "addr", "ip_address", "ipaddress", "server", "proxy")
PORT_FIELDS = ("port",)
PROTOCOL_FIELDS = ("protocol", "type", "scheme", "protocols", "types")
USER_FIELDS = ("username", "user", "login")
PASSWORD_FIELDS = ("password", "pass", "passwd")
TAG_FIELDS = (
    "country",
    "country_code",
    "countrycode",
    "city",
    "region",
    "anonymity",
    "anonymity_level",
    "provider",
    "isp",
    "asn",
    "source",
)


def _first(item: dict, names: tuple[str, ...]) -> object:
    lowered = {str(k).lower(): v for k, v in item.items()}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _entries(document: object, depth: int = 0) -> list:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and depth < 2:
        lowered = {str(k).lower(): v for k, v in document.items()}
        for key in WRAPPERS:
            if key in lowered:
                return _entries(lowered[key], depth + 1)
    return []


def _from_object(item: dict) -> Iterator[Candidate | None]:
    lowered = {str(k).lower(): v for k, v in item.items()}
    tags = {name: lowered[name] for name in TAG_FIELDS if name in lowered}
    host = _first(item, HOST_FIELDS)
    port = _first(item, PORT_FIELDS)
    protocols = _first(item, PROTOCOL_FIELDS)
    if not isinstance(protocols, list):
        protocols = [protocols]
    username, password = _first(item, USER_FIELDS), _first(item, PASSWORD_FIELDS)
    for protocol in protocols[:4]:
        if port is None and isinstance(host, str):  # {"proxy": "1.2.3.4:8080"}
            found = parse_endpoint(host, tags)
            if found is not None and protocol and found.protocol is None:
                found = candidate(
                    found.host, found.port, protocol, found.username, found.password, tags
                )
            yield found
        else:
            yield candidate(host, port, protocol, username, password, tags)


def _candidates(entries: list) -> Iterator[Candidate | None]:
    for item in entries:
        if isinstance(item, str):
            yield parse_endpoint(item)
        elif isinstance(item, dict):
            yield from _from_object(item)


def _document(content: str) -> object:
    text = content.strip()
    if not text or text[0] not in "[{":
        return None
    try:
        return loads(text)
    except ValueError:
        return None


class JsonParser:
    name = "json"

    def supports(self, content: str, content_type: str) -> bool:
        """The body is JSON holding a list of entries, one of which is a proxy."""
        entries = _entries(_document(content))
        return any(found is not None for found in _candidates(entries[:200]))

    def parse(self, content: str) -> Iterator[Candidate]:
        return unique(_candidates(_entries(_document(content))))
