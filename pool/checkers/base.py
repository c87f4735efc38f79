"""What every checker works with: the member under check, the cycle's context, a verdict."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from models.ssrf_policy import Network


@dataclass
class Member:
    """A pool proxy as the checkers see it, its password in clear (memory only)."""

    id: str
    host: str
    port: int
    protocol: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    address: str | None = None  # what `host` resolved to and stage 1 connected to (pinned)


@dataclass(frozen=True)
class Judge:
    """Where the judge is: its URL's parts."""

    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query without the nonce

    @classmethod
    def parse(cls, url: str) -> Judge:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the judge URL must be http(s)://host[:port]/path, not {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(url, parts.scheme, parts.hostname, port, parts.path or "/")

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def target(self, nonce: str) -> str:
        """The request target (origin form) asking for `nonce`."""
        return f"{self.path}?nonce={nonce}"

    def absolute(self, nonce: str) -> str:
        """The absolute-form target a forward proxy gets."""
        return f"{self.scheme}://{self.authority}{self.target(nonce)}"


@dataclass(frozen=True)
class Context:
    """One cycle's shared facts."""

    judge: Judge
    own_addresses: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]
    timeout_s: float
    allowed: tuple[Network, ...] = ()
    # A judge on loopback can only judge members on loopback (others would reach their own).
    judge_on_loopback: bool = False
    # Proxy headers the judge sees even without a proxy (a reverse proxy in front of it):
    # they say nothing about a member.
    baseline: frozenset[str] = frozenset()


@dataclass
class Outcome:
    """One checker's verdict on one member (a `pool_checks` row, plus grades when learnt)."""

    checker_name: str
    stage: int
    passed: bool
    latency_ms: float | None
    detail: str
    anonymity: str | None = None
    exit_ip: str | None = None
    country: str | None = None
    # Neither passed nor failed: the member could not be judged (the judge is out of its
    # reach), so the cycle leaves its grades alone.
    inconclusive: bool = False
