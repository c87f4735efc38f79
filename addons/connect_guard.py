"""The last line of fail-closed: mitmproxy itself connects nowhere but the stream bridge.

Every flow is answered by the pipeline or sent by the forward stage's own client;
mitmproxy opens a server connection of its own only to pass a streamed request
body to the in-process stream bridge. Should a flow ever slip through unanswered
(a bug, or a hook skipped while the process shuts down), mitmproxy would connect
to the reverse-mode placeholder upstream; this refuses that connection, and any
other that is not the bridge's, before it is made.
"""

from __future__ import annotations

import logging

from mitmproxy.proxy import server_hooks

from addons.stream_bridge import BRIDGE, HOST, StreamBridge

log = logging.getLogger("portcullis.connect_guard")
REFUSED = "Portcullis never lets mitmproxy connect by itself (only to its stream bridge)"


class ConnectGuard:
    def __init__(self, bridge: StreamBridge = BRIDGE):
        self.bridge = bridge

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        address = data.server.address
        if self.bridge.port is not None and address == (HOST, self.bridge.port):
            return
        log.error("refused a connection mitmproxy tried to open by itself to %s", address)
        data.server.error = REFUSED
