"""Where mitmproxy sends the request bodies it streams: a loopback server inside this process.

mitmproxy streams a large request body (or a chunked one that grows past
`stream_large_bodies`) straight to `flow.request.url`, without another hook.
So every granted flow points there at a one-time bridge address until the
forward stage has sent it itself; a streamed body then arrives here, and the
bridge hands it, still streaming, to the same send function the buffered path
uses. The bridge answers with an empty 200 and the respond stage swaps in the
real response (see `Respond._settle`) — unless the answer streams: then the
bridge passes it on as it arrives (addons/response_stream.py). A granted request
sent from the `request` hook whose answer streams comes here too, for that.
Nothing mitmproxy does by itself can reach a target. A refused request whose
body is still coming is drained into the bridge's sink the same way (see
`responses.answer`).
"""

from __future__ import annotations

import logging
import secrets
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from aiohttp import web
from mitmproxy import http

log = logging.getLogger("portcullis.bridge")
CHUNK_BYTES = 64 * 1024
HOST = "127.0.0.1"
SINK_PATH = "/sink"


class Streamed(Protocol):
    async def serve(self, request: web.BaseRequest) -> web.StreamResponse: ...


# Sends or queues the flow's request (its body streamed in); what streams back, if anything.
Handler = Callable[[http.HTTPFlow, AsyncIterator[bytes]], Awaitable[Streamed | None]]


class StreamBridge:
    def __init__(self):
        self.handle: Handler | None = None  # the forward stage's
        self._pending: weakref.WeakValueDictionary[str, http.HTTPFlow] = (
            weakref.WeakValueDictionary()
        )
        self._runner: web.ServerRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        # A cancelled handler is how a caller's disconnect reaches a streamed answer's pump.
        server = web.Server(self._serve, access_log=None, handler_cancellation=True)
        self._runner = web.ServerRunner(server)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.port = self._runner.addresses[0][1]
        log.debug("stream bridge on %s:%s", HOST, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def route(self, flow: http.HTTPFlow) -> str:
        """A one-time bridge URL for `flow`; valid until used or forgotten."""
        if self.port is None:
            raise RuntimeError("the stream bridge is not running")
        token = secrets.token_urlsafe(16)
        self._pending[token] = flow
        flow.metadata["portcullis.bridge"] = token
        return f"http://{HOST}:{self.port}/{token}"

    @property
    def running(self) -> bool:
        return self.port is not None

    def sink_url(self) -> str:
        """Where a refused request's body goes to be read and dropped."""
        return f"http://{HOST}:{self.port}{SINK_PATH}"

    def forget(self, flow: http.HTTPFlow) -> None:
        """The flow was sent another way: its bridge URL stops working."""
        self._pending.pop(flow.metadata.pop("portcullis.bridge", ""), None)

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path == SINK_PATH:
            async for _ in request.content.iter_chunked(CHUNK_BYTES):
                pass  # a refused request's body: read, so the caller can be answered, and dropped
            return web.Response(status=200)
        flow = self._pending.pop(request.path.lstrip("/"), None)
        if flow is None or self.handle is None:
            return web.Response(status=404, text="unknown bridge token")
        flow.metadata.pop("portcullis.bridge", None)
        streamed = await self.handle(flow, request.content.iter_chunked(CHUNK_BYTES))
        if streamed is not None:
            return await streamed.serve(request)
        return web.Response(status=200)


# One per process: the forward stage sends through it, any stage may drain a refused body into it.
BRIDGE = StreamBridge()
