"""The pump: a target's answer passed to the caller chunk by chunk, as it arrives (issue 18).

The forward stage decides, once the target's status and headers are in, that an
answer streams (see `Forward._answer`). It registers a `ResponseStream` for the
flow and points mitmproxy at the stream bridge, whose handler calls `serve`:
the bridge answers mitmproxy with each chunk the moment the target sends it,
and the respond stage's `responseheaders` puts the target's status and headers
on what the caller gets (`caller_head`).

A stream ends cleanly only when the target's body ended. Otherwise it is cut:
the bridge connection is aborted, so mitmproxy breaks the caller's (HTTP/1.1:
the connection closes before the last chunk or the full Content-Length;
HTTP/2: the stream is reset), never passing a truncated body as complete:

- past the size limit: `response-too-large`;
- the target idle longer than the read timeout: `target-timeout`;
- the target broke off: `target-unreachable`;
- the caller left (mitmproxy closed the bridge connection, the handler is
  cancelled): `caller-disconnected`, and the target's connection is closed at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field

from aiohttp import web
from mitmproxy import http

from addons.response_watch import Watch, rewrites, run_watches
from addons.responses import TARGET_TIMEOUT, TARGET_UNREACHABLE, TOO_LARGE
from addons.state import FlowState
from addons.upstream import TargetTimeout, UpstreamFailure, UpstreamStream

log = logging.getLogger("portcullis.stream")
CALLER_DISCONNECTED = "caller-disconnected"
# The request log's `proxyData.message` of a streamed answer that did not end cleanly.
OUTCOME_MESSAGES = {
    TOO_LARGE: "The target's answer grew past the response size limit; the stream was cut",
    TARGET_TIMEOUT: "The target sent nothing for longer than the read timeout; the stream was cut",
    TARGET_UNREACHABLE: "The target broke off its answer; the stream was cut",
    CALLER_DISCONNECTED: "The caller disconnected before the answer ended; "
    "the target's connection was closed",
}
# Framing belongs to each connection; the caller's is settled in `caller_head`.
FRAMING = frozenset({b"content-length", b"transfer-encoding"})

_streams: weakref.WeakKeyDictionary[http.HTTPFlow, ResponseStream] = weakref.WeakKeyDictionary()


class _Cut(Exception):
    def __init__(self, outcome: str):
        super().__init__(outcome)
        self.outcome = outcome


@dataclass(eq=False)
class ResponseStream:
    """One answer being streamed: the target's side (`upstream`), the watches over it."""

    state: FlowState
    upstream: UpstreamStream
    watches: list[Watch]
    limit: int  # bytes of the target's body the caller may get; 0: no limit
    first: bytes  # what had arrived when the forward stage decided to stream
    preview_bytes: int  # how much of the body the request log keeps
    passed: int = 0
    preview: bytearray = field(default_factory=bytearray)
    settled: bool = False
    started: bool = False  # the bridge asked for it
    dropped: bool = False  # the caller gets another answer: the target's is not read on

    def caller_head(self, response: http.Response, http2: bool) -> None:
        """Put the target's status and headers on mitmproxy's `response` (the bridge's),
        framed for the caller: the target's Content-Length if it sent one and no watch
        rewrites the body; else chunked (HTTP/1.1) or DATA frames as they come (HTTP/2)."""
        upstream = self.upstream
        response.status_code = upstream.status
        response.reason = upstream.reason or ""
        fields = [(n, v) for n, v in upstream.headers if n.lower() not in FRAMING]
        if upstream.content_length is not None and not rewrites(self.watches):
            fields.append((b"content-length", str(upstream.content_length).encode()))
        elif not http2:
            fields.append((b"transfer-encoding", b"chunked"))
        response.headers.fields = tuple(fields)
        response.stream = True

    async def serve(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer the bridge request with the target's body as it arrives; never raises
        except to let a cancellation (the caller left) go on."""
        response = web.StreamResponse(status=200)  # the caller's status is set in caller_head
        response.enable_chunked_encoding()
        self.started = True
        outcome = None
        try:
            await response.prepare(request)
            await self._pass(response, self.first)
            async for chunk in self.upstream.chunks():
                await self._pass(response, chunk)
            tail = run_watches(self.watches, b"", final=True)
            if tail:
                await self._write(response, tail)
            self._settle(None)
            await response.write_eof()
        except _Cut as cut:
            outcome = cut.outcome
        except TargetTimeout:
            outcome = TARGET_TIMEOUT
        except UpstreamFailure:
            outcome = TARGET_UNREACHABLE
        except asyncio.CancelledError:
            self.caller_left()  # the bridge connection closed: the caller left
            raise
        except ConnectionError:
            self.caller_left()
            return response
        except Exception:
            log.exception("streaming an answer failed")
            outcome = TARGET_UNREACHABLE
        finally:
            self.upstream.close()
        if self.dropped:  # end cleanly: mitmproxy sends the caller the answer put in its place
            await response.write_eof()
            return response
        if outcome is not None:
            self._settle(outcome)
            if request.transport is not None:
                request.transport.abort()  # never a clean end: mitmproxy breaks the caller's
        return response

    async def _pass(self, response: web.StreamResponse, chunk: bytes) -> None:
        if not chunk:
            return
        if self.limit and self.passed + len(chunk) > self.limit:
            raise _Cut(TOO_LARGE)
        self.passed += len(chunk)
        self.state.response_bytes = self.passed  # current even if the caller's end comes first
        data = run_watches(self.watches, chunk)
        if data:
            await self._write(response, data)

    async def _write(self, response: web.StreamResponse, data: bytes) -> None:
        room = self.preview_bytes - len(self.preview)
        if room > 0:
            self.preview += data[:room]
            self.state.response_preview = bytes(self.preview)
        await response.write(data)

    def caller_left(self) -> None:
        """mitmproxy saw the caller leave (its `error` hook, which comes before the bridge
        handler is cancelled): close the target's connection now and settle, so every later
        `error` hook (request log, telemetry) sees the final state. A stream already settled
        (cut by the pump, which settles before breaking the connection) keeps its outcome."""
        if self.settled:
            return
        self.upstream.close()
        self._settle(CALLER_DISCONNECTED)

    def drop(self) -> None:
        """The caller gets another answer instead (settling the head failed): stop reading
        the target, and let the flow's state keep what the failure recorded."""
        self.dropped = self.settled = True
        self.upstream.close()

    def _settle(self, outcome: str | None) -> None:
        """What the request log and telemetry read once the answer ended (or broke off)."""
        if self.settled:
            return
        self.settled = True
        state = self.state
        state.streamed = True
        state.response_bytes = self.passed
        state.response_preview = bytes(self.preview)
        state.target_answered_at = time.time()
        state.stream_outcome = outcome
        if outcome is not None and outcome != CALLER_DISCONNECTED:
            state.proxy_code = outcome


def register(flow: http.HTTPFlow, stream: ResponseStream) -> None:
    _streams[flow] = stream
    stream.state.streamed = True


def stream_of(flow: http.HTTPFlow) -> ResponseStream | None:
    """The answer being streamed for `flow`, if it streams."""
    return _streams.get(flow)


def discard(flow: http.HTTPFlow) -> None:
    """`flow` is answered some other way: close its target's answer if one was held."""
    stream = _streams.pop(flow, None)
    if stream is not None:
        stream.upstream.close()
