"""The caller's address: X-Forwarded-For believed only from trusted proxies, and only so far."""

from __future__ import annotations

import pytest

from addons.client_address import caller_address
from addons.ssrf import parse_networks

TRUSTED = parse_networks("127.0.0.1, 10.0.0.0/8")


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("8.8.8.8", ["1.1.1.1"], TRUSTED, "8.8.8.8"),  # untrusted peer: its header is ignored
        ("127.0.0.1", ["8.8.8.8"], (), "127.0.0.1"),  # nothing trusted: the peer
        ("127.0.0.1", ["8.8.8.8"], TRUSTED, "8.8.8.8"),
        ("127.0.0.1", ["6.6.6.6, 8.8.8.8"], TRUSTED, "8.8.8.8"),  # the caller wrote 6.6.6.6
        ("127.0.0.1", ["6.6.6.6, 8.8.8.8, 10.1.1.1"], TRUSTED, "8.8.8.8"),  # through a trusted hop
        ("127.0.0.1", ["6.6.6.6", "8.8.8.8"], TRUSTED, "8.8.8.8"),  # several header lines
        ("127.0.0.1", ["10.2.2.2"], TRUSTED, "10.2.2.2"),  # all trusted: the first hop
        ("127.0.0.1", [], TRUSTED, "127.0.0.1"),
        ("127.0.0.1", ["8.8.8.8, not-an-ip"], TRUSTED, None),  # garbage is not guessed past
        ("127.0.0.1", ["[2001:4860::8888]:443"], TRUSTED, "2001:4860::8888"),
        ("127.0.0.1", ["81.2.69.142:5000"], TRUSTED, "81.2.69.142"),
        ("::ffff:127.0.0.1", ["8.8.8.8"], TRUSTED, "8.8.8.8"),
        ("", ["8.8.8.8"], TRUSTED, None),
    ],
)
def test_caller_address(peer, forwarded, trusted, expected):
    assert caller_address(peer, forwarded, trusted) == expected
