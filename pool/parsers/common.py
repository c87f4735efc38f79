"""What every parser shares: the candidate tuple, endpoint parsing and normalisation.

A parser never trusts a list: a host must be an IPv4/IPv6 address or a host name, a port
1-65535, a protocol one of the pool's four (with common aliases); anything else makes the
entry be skipped, never stored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple
from urllib.parse import unquote

PROTOCOL_ALIASES = {
    "http": "http",
    "https": "https",
    "socks4": "socks4",
    "socks4a": "socks4",
    "socks5": "socks5",
    "socks5h": "socks5",
    "socks": "socks5",
}
MAX_CREDENTIAL_CHARS = 255
MAX_TAG_CHARS = 100
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_DOTTED_QUAD = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


class Candidate(NamedTuple):
    """One proxy a list names. `protocol` None: the list does not say (the source's default
    applies)."""

    host: str
    port: int
    protocol: str | None
    username: str | None
    password: str | None
    tags: dict


def normalise_protocol(value: object) -> str | None:
    """The pool's name for a protocol (`"SOCKS"` → socks5); None when unknown."""
    if not isinstance(value, str):
        return None
    return PROTOCOL_ALIASES.get(value.strip().lower().removesuffix("://"))


def normalise_host(value: str) -> str | None:
    """An address in canonical form (IPv6 without brackets) or a lower-cased host name."""
    text = value.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if _DOTTED_QUAD.match(text):
        # Lists often write 010.000.000.001; ipaddress refuses leading zeros.
        octets = [int(part) for part in text.split(".")]
        return ".".join(map(str, octets)) if all(o <= 255 for o in octets) else None
    if ":" in text:
        try:
            return str(ipaddress.IPv6Address(text))
        except ValueError:
            return None
    text = text.rstrip(".")
    if not text or len(text) > 253:
        return None
    labels = text.split(".")
    if not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return text


def normalise_port(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        port = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 5:
        port = int(value.strip())
    else:
        return None
    return port if 1 <= port <= 65535 else None


def clean_tags(tags: dict) -> dict:
    """Short string tags only (a list's country, anonymity, provider...)."""
    clean = {}
    for key, value in tags.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float | str):
            text = str(value).strip()[:MAX_TAG_CHARS]
            if text:
                clean[str(key)[:40]] = text
    return clean


def candidate(
    host: object,
    port: object,
    protocol: object = None,
    username: object = None,
    password: object = None,
    tags: dict | None = None,
) -> Candidate | None:
    """A valid candidate from loose values, or None (the entry is skipped)."""
    if not isinstance(host, str):
        return None
    clean_host = normalise_host(host)
    clean_port = normalise_port(port)
    if clean_host is None or clean_port is None:
        return None
    clean_protocol = None
    if protocol not in (None, ""):
        clean_protocol = normalise_protocol(protocol)
        if clean_protocol is None:
            return None  # a protocol the pool does not know: never guess one
    user = username if isinstance(username, str) and username else None
    secret = password if isinstance(password, str) and password else None
    if user is None and secret is not None:
        return None
    if any(v is not None and len(v) > MAX_CREDENTIAL_CHARS for v in (user, secret)):
        return None
    return Candidate(clean_host, clean_port, clean_protocol, user, secret, clean_tags(tags or {}))


def parse_endpoint(text: str, tags: dict | None = None) -> Candidate | None:
    """`host:port`, `[v6]:port`, `scheme://user:pass@host:port[/]` or
    `host:port:user:pass`; None when it is none of them."""
    text = text.strip()
    scheme = None
    if "://" in text:
        scheme, _, text = text.partition("://")
        if not scheme:
            return None
    text = text.rstrip("/")
    username = password = None
    if "@" in text:
        userinfo, _, text = text.rpartition("@")
        username, sep, password = userinfo.partition(":")
        if not sep:
            return None
        username, password = unquote(username), unquote(password)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        parts = text.split(":")
        if len(parts) == 4 and username is None:  # host:port:user:pass
            host, port, username, password = parts
        elif len(parts) == 2:
            host, port = parts
        else:
            return None  # a bare IPv6 address and its port cannot be told apart
    return candidate(host, port, scheme, username, password, tags)


def unique(candidates: Iterable[Candidate | None]) -> Iterator[Candidate]:
    """Valid candidates, each (protocol, host, port) once: the first one listed wins."""
    seen: set[tuple] = set()
    for item in candidates:
        if item is None:
            continue
        key = (item.protocol, item.host, item.port)
        if key not in seen:
            seen.add(key)
            yield item
