"""mitmproxy never opens a server connection by itself, except to the in-process stream bridge.

The pipeline answers or sends every flow; this is the net under it. Streamed bodies,
which do go through mitmproxy's own connection to the bridge, are covered end to end
by the large-body tests (tests/test_proxy_e2e.py, tests/test_upstream_failures.py).
"""

from __future__ import annotations

import pytest
from mitmproxy import connection
from mitmproxy.proxy import server_hooks
from mitmproxy.test import tflow

from addons.connect_guard import ConnectGuard
from addons.stream_bridge import HOST, StreamBridge


def attempt(guard: ConnectGuard, address: tuple[str, int]) -> connection.Server:
    server = connection.Server(address=address)
    guard.server_connect(server_hooks.ServerConnectionHookData(server, tflow.tclient_conn()))
    return server


@pytest.fixture
def guard() -> ConnectGuard:
    bridge = StreamBridge()
    bridge.port = 45678
    return ConnectGuard(bridge)


@pytest.mark.parametrize(
    "address",
    [
        ("127.0.0.1", 9),
        ("127.0.0.1", 45679),
        ("localhost", 45678),
        ("10.0.0.1", 443),
        ("::1", 45678),
    ],
)
def test_connections_mitmproxy_would_open_by_itself_are_refused(guard, address):
    assert attempt(guard, address).error, f"mitmproxy may connect to {address}"


def test_the_stream_bridge_is_the_one_allowed_address(guard):
    assert attempt(guard, (HOST, 45678)).error is None


def test_before_the_bridge_listens_nothing_is_allowed():
    assert attempt(ConnectGuard(StreamBridge()), (HOST, 45678)).error
