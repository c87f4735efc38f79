"""Which addresses the gateway may connect to on a tenant's behalf: pure rules, no I/O.

Three classes of address:

- **public unicast**: always allowed. IPv4 addresses Python's `ipaddress`
  calls global, minus multicast and 192.0.0.0/24; IPv6 addresses inside
  global unicast space (2000::/3) that `ipaddress` calls global, minus
  documentation space (3fff::/20).
- **never**: not unicast, or not an address a connection can go to, so no
  operator setting allows them: unspecified (0.0.0.0, ::), "this network"
  (0.0.0.0/8), multicast (224.0.0.0/4, ff00::/8), reserved (240.0.0.0/4)
  and the limited broadcast address 255.255.255.255 inside it.
- **everything else** (loopback, private, link-local and with it the cloud
  metadata addresses 169.254.169.254 and fd00:ec2::254, shared address
  space, unique-local, site-local, Teredo, the rest of IPv6 outside
  2000::/3): allowed only inside a network of the operator's allow-list.

An IPv6 address that carries an IPv4 address is judged by that IPv4
address: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64
(64:ff9b::/96) and 6to4 (2002::/16). So `::ffff:127.0.0.1` is loopback,
`64:ff9b::a00:1` is private, and `2002:e000:1::` is multicast.
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_v4 = ipaddress.IPv4Network
_v6 = ipaddress.IPv6Network
NEVER_NETWORKS: tuple[tuple[Network, str], ...] = (
    (_v4("0.0.0.0/8"), "unspecified"),  # 0.0.0.0 itself reaches this host on Linux
    (_v4("224.0.0.0/4"), "multicast"),
    (_v4("255.255.255.255/32"), "broadcast"),
    (_v4("240.0.0.0/4"), "reserved"),
    (_v6("::/128"), "unspecified"),
    (_v6("ff00::/8"), "multicast"),
)
GLOBAL_UNICAST_V6 = _v6("2000::/3")
NAT64 = _v6("64:ff9b::/96")
IPV4_COMPATIBLE = _v6("::/96")
# Not globally reachable, whatever the running Python's table says (it changed in 3.12.4).
NOT_GLOBAL_V4 = (_v4("192.0.0.0/24"),)  # IETF protocol assignments
NOT_GLOBAL_V6 = (_v6("3fff::/20"),)  # documentation (RFC 9637)


class NeverAllowed(ValueError):
    """An allow-list entry that names only addresses no setting can allow."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def effective(address: Address) -> Address:
    """The address a connection really reaches, for judging it: the IPv4 one it carries."""
    if isinstance(address, ipaddress.IPv6Address):
        return embedded_ipv4(address) or address
    return address


def never_reason(address: Address) -> str | None:
    """Why no setting may allow `address` (e.g. "multicast"), or None."""
    address = effective(address)
    return next((why for net, why in NEVER_NETWORKS if address in net), None)


def is_public(address: Address) -> bool:
    """Whether `address` is public unicast, which needs no allowance."""
    address = effective(address)
    if never_reason(address):
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not any(address in net for net in NOT_GLOBAL_V4)
    return (
        address in GLOBAL_UNICAST_V6
        and address.is_global
        and not any(address in net for net in NOT_GLOBAL_V6)
    )


def address_class(address: Address) -> str:
    """A word for the operator's log: "public", "multicast", "loopback", "private", ..."""
    reason = never_reason(address)
    if reason:
        return reason
    if is_public(address):
        return "public"
    judged = effective(address)
    for attribute in ("is_loopback", "is_link_local", "is_private", "is_site_local"):
        if getattr(judged, attribute, False):
            return attribute.removeprefix("is_").replace("_", "-")
    return "non-global"


def is_allowed(address: Address, allowed: tuple[Network, ...] = ()) -> bool:
    """Whether the gateway may connect to `address`, given the operator's `allowed` networks.

    An allowance is checked against the address as given and, for the IPv6
    forms the kernel sends as IPv4 (mapped, compatible), against that IPv4
    address: allowing 127.0.0.1 also allows ::ffff:127.0.0.1. NAT64 and 6to4
    addresses reach another host (the translator or relay), so only an
    allowance of the IPv6 address itself lets a non-public one through.
    """
    if never_reason(address):
        return False
    if is_public(address):
        return True
    candidates = {address}
    if (
        isinstance(address, ipaddress.IPv6Address)
        and address not in NAT64
        and not address.sixtofour
    ):
        candidates.add(effective(address))
    return any(
        candidate in network
        for candidate in candidates
        for network in allowed
        if candidate.version == network.version
    )


def first_refused(resolved: list[str], allowed: tuple[Network, ...] = ()) -> Address | None:
    """The first of a name's resolved addresses (text, zone ids allowed) that `allowed` does
    not let through, or None: every address a name resolves to must be allowed."""
    for text in resolved:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_allowed(address, allowed):
            return address
    return None


def parse_networks(spec: str) -> tuple[Network, ...]:
    """`"127.0.0.1/32, 10.0.0.0/8"` → networks; a bare address means that one address.

    Raises ValueError for a malformed entry.
    """
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False) for item in spec.split(",") if item.strip()
    )


def parse_allowances(spec: str) -> tuple[Network, ...]:
    """The operator's allow-list (`portcullis_allow_targets`), parsed as `parse_networks`.

    Also raises `NeverAllowed` (a ValueError) for an entry that lies wholly in
    a class no setting can allow (e.g. "224.0.0.0/4"), so an operator learns
    at start-up that it has no effect.
    """
    networks = parse_networks(spec)
    for network in networks:
        for never, why in NEVER_NETWORKS:
            if network.version == never.version and network.subnet_of(never):
                raise NeverAllowed(f"{network} is {why}; the gateway never connects there")
    return networks
