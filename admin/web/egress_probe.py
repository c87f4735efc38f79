"""The target page's "Test through egress": the admin fetches the target's test URL through
the target's egress, as the data plane would send it, and reports what came back.

A fixed proxy is used with its sealed credentials (opened in memory, never shown); a pool
egress uses the member the data plane would pick first (`pool.egress_members.free_members`:
free, active, matching, best score). The fetch itself is the pool's reachability test
(`pool.reach.fetch_through`): the target URL's host is resolved and checked with the SSRF
policy (`PORTCULLIS_ALLOW_TARGETS`) and the proxy is asked for the checked address; the
proxy's own address must be allowed by the same option (fixed proxy or pool member), as the
data plane's one guard checks both. Nothing here
holds a transaction while the network is used. An answer never carries a credential.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from models import Target
from models.crypto import KeyRing, SecretDecryptionError
from models.egress import EgressError, FixedEgress, open_egress
from models.settings import Settings
from pool.checkers.base import Member
from pool.egress_members import free_members
from pool.errors import PoolError
from pool.reach import fetch_through

TIMEOUT_S = 10
NO_MEMBER = "No free active pool proxy matches this target's filters."


@dataclass(frozen=True)
class EgressProbe:
    """What the page shows: the URL, which proxy carried it, and the outcome."""

    url: str
    via: str | None
    reachable: bool
    status: int | None = None
    milliseconds: int | None = None
    error: str | None = None


def test_url(target: Target) -> str:
    """The target's base URL joined with its test path (the data plane joins the same way)."""
    return target.base_url.rstrip("/") + "/" + (target.test_path or "/").lstrip("/")


def _display(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe_egress(
    session: Session, settings: Settings, key_ring: KeyRing, target: Target
) -> EgressProbe:
    """Fetch the target's test URL through its egress (blocking: for a request thread)."""
    url = test_url(target)
    try:
        egress = open_egress(target, key_ring)
    except (SecretDecryptionError, EgressError):
        return EgressProbe(
            url, None, False, error="The egress setting cannot be read: set it again."
        )
    if egress is None:
        return EgressProbe(
            url, None, False, error="This target sends directly: set an egress first."
        )
    if isinstance(egress, FixedEgress):
        member = Member(
            "proxy", egress.host, egress.port, egress.scheme, egress.username, egress.password
        )
        via = f"proxy {egress.url}"
        proxy_tls = egress.scheme == "https"  # TLS to the proxy itself, as the data plane
    else:
        found = free_members(session, key_ring, egress, time.time(), limit=1)
        if not found:
            return EgressProbe(url, None, False, error=NO_MEMBER)
        first = found[0]
        member = Member(
            first.id, first.host, first.port, first.protocol, first.username, first.password
        )
        via = f"pool proxy {first.id} ({first.protocol}://{_display(first.host, first.port)})"
        proxy_tls = False  # the pool's https members are plain http proxies that tunnel
    session.rollback()  # no transaction held while the proxy is asked
    try:
        result = fetch_through(
            member,
            url,
            TIMEOUT_S,
            allowed_targets=settings.allow_targets,
            allowed_proxies=settings.allow_targets,  # the data plane's one guard checks both
            proxy_tls=proxy_tls,
        )
    except PoolError as exc:  # the URL itself is refused (SSRF policy) or unusable
        return EgressProbe(url, via, False, error=exc.message)
    return EgressProbe(
        url,
        via,
        bool(result["reachable"]),
        result["status_code"],
        result["latency_ms"],
        result["error"],
    )


probe_egress.__test__ = False  # not a test, wherever it is imported
test_url.__test__ = False
