"""Reading the judge's answer: is it genuine (the nonce), and what does it reveal.

Anonymity (issue 16):
- `transparent`: one of the checker's own addresses appears in any header the judge saw, or
  is the address the request came from (the exit address);
- `anonymous`: the address is hidden, but the request carries proxy headers (PROXY_HEADERS);
- `elite`: neither.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import iptocc

from models.json_limits import loads
from pool.checkers.http1 import HttpAnswer

PROXY_HEADERS = frozenset(
    {
        "via",
        "x-forwarded-for",
        "forwarded",
        "x-real-ip",
        "proxy-connection",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-server",
        "x-proxy-id",
        "client-ip",
        "x-client-ip",
        "x-proxyuser-ip",
        "proxy-agent",
        "x-bluecoat-via",
        "cache-control-via",
    }
)
_ADDRESS_TOKEN = re.compile(r"[0-9A-Fa-f:.]{2,}")
FAKED = "judge answer faked or cached"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class NotGenuine(Exception):
    """The answer did not come from the judge for this check."""


def parse_address(text: str | None) -> Address | None:
    try:
        return ipaddress.ip_address((text or "").strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def addresses_in(value: str) -> set[Address]:
    """Every IP address written in a header value ("1.2.3.4:80", "for=\"[::1]\"", ...)."""
    found: set[Address] = set()
    for token in _ADDRESS_TOKEN.findall(value):
        for candidate in (token, token.rsplit(":", 1)[0], token.strip(":.")):
            address = parse_address(candidate)
            if address is not None:
                found.add(address)
                break
    return found


def genuine_answer(answer: HttpAnswer, nonce: str) -> dict:
    """The judge's JSON answer for `nonce`; NotGenuine when it is anything else."""
    if answer.status != 200:
        raise NotGenuine(f"the judge answered {answer.status} through the proxy")
    try:
        body = loads(answer.body)
    except ValueError as exc:
        raise NotGenuine(f"{FAKED}: not the judge's JSON") from exc
    if not isinstance(body, dict) or body.get("nonce") != nonce:
        raise NotGenuine(f"{FAKED}: the nonce does not match")
    if not isinstance(body.get("headers"), dict):
        raise NotGenuine(f"{FAKED}: no headers echoed")
    return body


def country_of(address: Address | None) -> str | None:
    """ISO country code of a public address (offline table), None for others."""
    if address is None or not address.is_global:
        return None
    return iptocc.country_code(str(address)) or None


def grade(
    body: dict, own: Iterable[Address], baseline: Iterable[str] = ()
) -> tuple[str, str | None, str | None]:
    """(anonymity, exit_ip, country) from a genuine judge answer; `baseline` names proxy
    headers the judge sees without any proxy (they don't count)."""
    own = set(own)
    exit_address = parse_address(body.get("remote_addr"))
    headers = {str(k).lower(): str(v) for k, v in body["headers"].items()}
    seen = set().union(*(addresses_in(v) for k, v in headers.items() if k != "host"))
    if exit_address in own or seen & own:
        anonymity = "transparent"
    elif (PROXY_HEADERS - set(baseline)) & headers.keys():
        anonymity = "anonymous"
    else:
        anonymity = "elite"
    exit_ip = str(exit_address) if exit_address else None
    return anonymity, exit_ip, country_of(exit_address)
