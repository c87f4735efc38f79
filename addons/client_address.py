"""The caller's address: the peer, or what trusted proxies in front of the gateway say it is.

`X-Forwarded-For` is believed only when the peer is a configured trusted
proxy, and then only as far back as the chain stays trusted: the right-most
address that is not itself a trusted proxy is the caller (anything to its
left was written by the caller and could be anything).
"""

from __future__ import annotations

import ipaddress

from addons.ssrf import Network


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address, trusted: tuple[Network, ...]) -> bool:
    return any(address in network for network in trusted)


def caller_address(peer: str, forwarded_for: list[str], trusted: tuple[Network, ...]) -> str | None:
    """The caller's IP address as text, or None if it cannot be told."""
    address = _parse(peer)
    if address is None:
        return None
    if not trusted or not _trusted(address, trusted):
        return str(address)
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        hop_address = _parse(hop)
        if hop_address is None:
            return None  # garbage in the trusted part of the chain: unknown, not guessed
        if not _trusted(hop_address, trusted):
            return str(hop_address)
        address = hop_address
    return str(address)
