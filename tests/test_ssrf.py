"""SSRF guard address rules (no DNS: literal addresses only, so no traffic leaves the machine)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from addons.ssrf import TargetGuard, TargetRefused, is_allowed, parse_allowances, parse_networks
from models.ssrf_policy import NeverAllowed, address_class


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


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("224.0.0.1", "multicast"),  # ipaddress calls it global
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),  # global-scope multicast, still not unicast
        ("255.255.255.255", "broadcast"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:224.0.0.1", "multicast"),  # IPv4-mapped
        ("::224.0.0.1", "multicast"),  # IPv4-compatible
        ("64:ff9b::e000:1", "multicast"),  # NAT64
        ("2002:e000:1::", "multicast"),  # 6to4
        ("::ffff:0.0.0.0", "unspecified"),
    ],
)
def test_non_unicast_addresses_are_never_allowed(address, why):
    """Not even by an allow-list that covers everything."""
    parsed = ipaddress.ip_address(address)
    everything = parse_networks("0.0.0.0/0, ::/0")
    assert address_class(parsed) == why
    assert not is_allowed(parsed, everything)
    with pytest.raises(TargetRefused):
        asyncio.run(TargetGuard(everything).allowed_addresses(address, 80))


@pytest.mark.parametrize(
    "address",
    [
        "::127.0.0.1",  # IPv4-compatible loopback
        "::ffff:7f00:1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 of loopback
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2002:7f00:1::",  # 6to4 of loopback
        "2002:a9fe:a9fe::",  # 6to4 of the metadata address
        "2002:c0a8:101::",  # 6to4 of 192.168.1.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "fd00:ec2::254",  # cloud metadata, IPv6
        "fec0::1",  # site-local
        "fc00::1",
        "2001:db8::1",  # documentation
        "3fff::1",  # documentation (RFC 9637)
        "100::1",  # discard-only
        "5f00::1",  # outside global unicast space
        "198.18.0.1",  # benchmarking
        "192.0.0.8",
    ],
)
def test_embedded_and_other_non_global_forms_are_refused_by_default(address):
    assert not is_allowed(ipaddress.ip_address(address), ())


@pytest.mark.parametrize(
    "address", ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::", "2a00:1450:4001::1"]
)
def test_embedded_public_addresses_pass(address):
    assert is_allowed(ipaddress.ip_address(address), ())


def test_an_allowance_covers_the_mapped_forms_but_not_translated_ones():
    allowed = parse_networks("127.0.0.1")
    for same in ("127.0.0.1", "::ffff:127.0.0.1", "::127.0.0.1"):
        assert is_allowed(ipaddress.ip_address(same), allowed), same
    for other in ("64:ff9b::7f00:1", "2002:7f00:1::", "127.0.0.2"):
        assert not is_allowed(ipaddress.ip_address(other), allowed), other


@pytest.mark.parametrize("spec", ["224.0.0.0/4", "255.255.255.255", "0.0.0.0", "ff02::1", "::"])
def test_allowing_a_never_allowed_class_is_a_start_up_error(spec):
    with pytest.raises(NeverAllowed):
        parse_allowances(spec)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0x7f000001", "127.1", "0177.0.0.1"])
def test_numeric_host_spellings_are_judged_by_what_they_resolve_to(host):
    """The C resolver reads these as 127.0.0.1 (locally, without DNS); so does the guard."""
    with pytest.raises(TargetRefused) as refused:
        asyncio.run(TargetGuard().allowed_addresses(host, 80))
    assert str(refused.value.address) == "127.0.0.1"
    assert "127.0.0.1" not in str(refused.value), "the caller's message names no address"
    asyncio.run(TargetGuard(parse_networks("127.0.0.1")).allowed_addresses(host, 80))
