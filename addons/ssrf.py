"""The SSRF guard: every outbound connection goes only to addresses the policy allows.

The rules (which addresses are public, which are never allowed, what the
operator's allow-list can open) live in `models/ssrf_policy.py`; this module
applies them to host names. Resolution uses the event loop's `getaddrinfo`
(run in a worker thread by asyncio) and is cached briefly, so most requests
cost a dictionary lookup. The upstream client resolves through this guard
(see `addons/upstream.py`), so it connects only to the addresses checked here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

from models.ssrf_policy import (
    Address,
    Network,
    address_class,
    is_allowed,
    parse_allowances,
    parse_networks,
)

__all__ = [
    "TargetGuard",
    "TargetRefused",
    "TargetUnresolvable",
    "is_allowed",
    "parse_allowances",
    "parse_networks",
]

CACHE_SECONDS = 30.0


class TargetRefused(Exception):
    """The target resolves to an address the gateway will not connect to.

    The message names the host only: the address and its class are for the
    operator's log (`address`, `address_class`), not for the caller, so a
    tenant cannot map internal names to addresses.
    """

    def __init__(self, host: str, address: Address):
        super().__init__(f"target {host} resolves to an address the gateway does not connect to")
        self.host = host
        self.address = address
        self.address_class = address_class(address)


class TargetUnresolvable(Exception):
    """The target's host name does not resolve."""


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
                raise TargetRefused(host, address)
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
