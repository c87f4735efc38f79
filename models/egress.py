"""How a target's requests leave the gateway: directly, through a fixed proxy, or the pool.

`Target.egress` holds the setting without any credential; a fixed proxy's username and
password are sealed in `Target.egress_secret_*` (AAD `"{target_id}:egress"`). The snapshot
opens them into the frozen dataclasses below, which the data plane's router uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FIXED_SCHEMES = ("http", "https", "socks4", "socks5")
ROTATIONS = ("per_request", "sticky")
DEFAULT_STICKY_SECONDS = 60
MAX_STICKY_SECONDS = 86400


@dataclass(frozen=True)
class FixedEgress:
    """One upstream proxy every request to the target goes through."""

    url: str  # scheme://host:port, never with userinfo
    scheme: str
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PoolEgress:
    """Requests go through free active pool proxies matching these filters."""

    protocol: str | None = None
    country: str | None = None
    anonymity: str | None = None
    min_score: float | None = None
    rotation: str = "per_request"
    sticky_seconds: int = DEFAULT_STICKY_SECONDS


Egress = FixedEgress | PoolEgress


def egress_aad(target_id: str) -> str:
    """The associated data a target's sealed egress credentials are bound to."""
    return f"{target_id}:egress"
