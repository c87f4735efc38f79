"""The SSRF guard: targets must resolve to public addresses unless the operator allows others.

Resolution uses the event loop's `getaddrinfo` (run in a worker thread by
asyncio) and is cached briefly, so most requests cost a dictionary lookup.
The upstream client resolves through this guard (see `addons/upstream.py`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

CACHE_SECONDS = 30.0
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The target resolves to an address the gateway will not connect to."""


class TargetUnresolvable(Exception):
    """The target's host name does not resolve."""


def parse_networks(spec: str) -> tuple[Network, ...]:
    """`"127.0.0.1/32, 10.0.0.0/8"` → networks; a bare address means that one address."""
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False) for item in spec.split(",") if item.strip()
    )


def is_allowed(address: Address, allowed: tuple[Network, ...]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global or any(address in network for network in allowed)


class TargetGuard:
    """Resolves targets and checks every address; verdicts are cached for `ttl` seconds."""

    def __init__(self, allowed: tuple[Network, ...] = (), ttl: float = CACHE_SECONDS):
        self._allowed = allowed
        self._ttl = ttl
        self._checked: dict[str, tuple[float, tuple[Address, ...]]] = {}  # host → allowed addresses

    @property
    def allowed(self) -> tuple[Network, ...]:
        return self._allowed

    @allowed.setter
    def allowed(self, networks: tuple[Network, ...]) -> None:
        self._allowed = networks
        self._checked.clear()  # verdicts under the old setting no longer hold

    def checked(self, host: str) -> tuple[Address, ...] | None:
        """The allowed addresses of `host` if checked within the cache period, without waiting."""
        cached = self._checked.get(host)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        return None

    async def allowed_addresses(self, host: str, port: int) -> tuple[Address, ...]:
        """The addresses `host` resolves to; raise unless every one of them is allowed.

        The upstream client connects only to addresses returned here, so a name
        cannot resolve to one address when checked and another when used.
        """
        addresses = self.checked(host)
        if addresses is not None:
            return addresses
        addresses = await self._resolve(host, port)
        for address in addresses:
            if not is_allowed(address, self._allowed):
                raise TargetRefused(f"target {host} resolves to {address}, which is not allowed")
        self._checked[host] = (time.monotonic(), addresses)
        return addresses

    @staticmethod
    async def _resolve(host: str, port: int) -> tuple[Address, ...]:
        try:
            return (ipaddress.ip_address(host),)
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise TargetUnresolvable(f"target host {host} does not resolve: {exc}") from exc
        return tuple({ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos})
