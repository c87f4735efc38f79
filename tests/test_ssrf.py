"""SSRF guard address rules (no DNS: literal addresses only, so no traffic leaves the machine)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from addons.ssrf import TargetGuard, TargetRefused, is_allowed, parse_networks


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
    ],
)
def test_non_public_addresses_are_refused_by_default(address):
    assert not is_allowed(ipaddress.ip_address(address), ())
    with pytest.raises(TargetRefused):
        asyncio.run(TargetGuard().allowed_addresses(address, 80))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    asyncio.run(TargetGuard().allowed_addresses(address, 443))


def test_operators_allow_addresses_and_networks():
    guard = TargetGuard(parse_networks("127.0.0.1, 10.0.0.0/8"))
    asyncio.run(guard.allowed_addresses("127.0.0.1", 80))
    asyncio.run(guard.allowed_addresses("10.9.9.9", 80))
    with pytest.raises(TargetRefused):
        asyncio.run(guard.allowed_addresses("127.0.0.2", 80))
    with pytest.raises(ValueError):
        parse_networks("not-a-network")
