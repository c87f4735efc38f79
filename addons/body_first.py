"""Body first: for proxies whose policy reads the request body, decide once it is in (issue 18).

A proxy `reads_body` when one of its rules checks the body (or an MCP call), or
it is marked as an MCP server. For its requests (`BodyFirst`, right after
authenticate):

- a body announced (Content-Length) over `portcullis_max_inspected_body_bytes`
  is refused at once: 413 `REQUEST_BODY_TOO_LARGE`, proxy code
  `request-too-large`, the body drained and dropped, nothing forwarded;
- otherwise the request points at the stream bridge's sink until the checks are
  done, so nothing mitmproxy might send by itself can reach a target: a chunked
  body that grows past `stream_large_bodies` (which this stage keeps at least
  as large as the bound) is streamed into the sink and gets the same 413;
- once the body is in (`request`), it is decoded within the bound (gzip,
  deflate, br; else 415 `BODY_NOT_INSPECTABLE`) and parsed once into
  `state.body` (models/request_body.py); on an MCP proxy a POST's JSON-RPC calls
  go to `state.mcp_calls` (models/mcp.py).

The later stages (authorize, rate limit, meters, budget, forward) wait for it:
each is wrapped in `AfterBody` (`BodyFirst.after_body`): a body-first flow's
`requestheaders` work is skipped there and run by `BodyFirst.request` once the body
is in, in the same order; the stages' own `request` hooks then follow as usual.
Nothing is counted, charged, minted or prepared before the rules have decided.
Proxies that read no body are untouched: their stages run in `requestheaders` as
before, and large uploads still stream to the target.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mitmproxy import ctx, exceptions, http
from mitmproxy.utils import human

from addons.failsafe import fail_closed
from addons.flow_url import point_at
from addons.responses import DENIED, PROXY_CODE, answer, answered, proxy_error
from addons.state import FlowState, state_of
from addons.stream_bridge import BRIDGE
from models.mcp import batch_refusal, parse_calls
from models.request_body import BodyRefusal, inspect_body, too_large

log = logging.getLogger("portcullis.body_first")

REQUEST_TOO_LARGE = "request-too-large"
DEFAULT_MAX_INSPECTED = 1024 * 1024
OFFLOAD_BYTES = 256 * 1024  # bodies above this are decoded and parsed off the event loop
OPTION = "portcullis_max_inspected_body_bytes"


def refusal_response(refusal: BodyRefusal, request_id: str) -> http.Response:
    code = REQUEST_TOO_LARGE if refusal.status == 413 else DENIED
    return proxy_error(
        refusal.status, code, refusal.code, refusal.message, refusal.details, request_id
    )


def announced_length(request: http.Request) -> int | None:
    length = request.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


class BodyFirst:
    """Reads a body-reading proxy's request body before any later check (see the module)."""

    def __init__(self, start_bridge: Callable[[], Awaitable[None]]):
        self.start_bridge = start_bridge  # the forward stage's start: the bridge must be up
        self.deferred: list[Any] = []  # the later stages, in pipeline order

    def after_body(self, stage: Any) -> AfterBody:
        """`stage` as it goes into the addon chain: its `requestheaders` work waits for the
        body on body-first flows, and then runs here, in the order stages were given."""
        self.deferred.append(stage)
        return AfterBody(stage)

    def load(self, loader) -> None:
        loader.add_option(
            OPTION,
            int,
            DEFAULT_MAX_INSPECTED,
            "Largest request body read for proxies whose rules check the body (or MCP "
            "proxies); larger ones answer 413 and are never forwarded.",
        )

    def configure(self, updated) -> None:
        options = ctx.options
        if OPTION in updated and options.portcullis_max_inspected_body_bytes < 1:
            raise exceptions.OptionsError(f"{OPTION} must be positive")
        if OPTION in updated or "stream_large_bodies" in updated:
            # mitmproxy streams (never hands to a hook) a body past stream_large_bodies;
            # a body within the bound must reach `request` whole, so that is at least the bound.
            bound = options.portcullis_max_inspected_body_bytes
            streamed_past = human.parse_size(options.stream_large_bodies)
            if streamed_past is not None and streamed_past < bound:
                options.stream_large_bodies = str(bound)

    @fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        state = state_of(flow)
        if state.proxy is None or not state.proxy.reads_body:
            return
        state.body_first = True
        await self.start_bridge()
        bound = ctx.options.portcullis_max_inspected_body_bytes
        length = announced_length(flow.request)
        if length is not None and length > bound:
            self._refuse(flow, state, too_large(bound, length))
            return
        # Until the checks are done, whatever mitmproxy streams by itself goes to the sink.
        # Always: an HTTP/2 body need not be announced (no length, no chunked framing).
        point_at(flow.request, BRIDGE.sink_url())
        request = flow.request
        if (request.is_http2 or request.is_http3) and "content-length" not in request.headers:
            # mitmproxy passes such a body to the sink (HTTP/1.1) unframed unless told it is
            # chunked. Only what mitmproxy sends changes: the target's headers are built
            # from the caller's as received (`state.caller_fields`).
            request.headers["transfer-encoding"] = "chunked"

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None or not state.body_first or answered(flow):
            return
        bound = ctx.options.portcullis_max_inspected_body_bytes
        if flow.request.stream:
            # It grew past stream_large_bodies and went into the sink: over the bound.
            self._refuse(flow, state, too_large(bound), drained=True)
            return
        raw = flow.request.raw_content or b""
        encoding = flow.request.headers.get("content-encoding")
        if len(raw) > OFFLOAD_BYTES:
            outcome = await asyncio.to_thread(inspect_body, raw, encoding, bound)
        else:
            outcome = inspect_body(raw, encoding, bound)
        if isinstance(outcome, BodyRefusal):
            self._refuse(flow, state, outcome)
            return
        state.body = outcome
        if state.proxy.mcp and flow.request.method == "POST":
            parsed = parse_calls(outcome.document)
            if parsed is not None:
                state.mcp_calls, state.mcp_batch = parsed
                too_many = batch_refusal(state.mcp_calls)
                if too_many is not None:
                    self._refuse(flow, state, too_many)
                    return
        # The later stages' header-time work, in order; their own `request` hooks follow
        # as for any flow. Each leaves the flow alone once one has answered it.
        for stage in self.deferred:
            await _run(stage.requestheaders, flow)

    @staticmethod
    def _refuse(
        flow: http.HTTPFlow, state: FlowState, refusal: BodyRefusal, drained: bool = False
    ) -> None:
        response = refusal_response(refusal, state.request_id)
        state.proxy_code = response.headers[PROXY_CODE]
        if drained:
            # The body already went into the sink; the respond stage sends this answer.
            state.final_response = response
            state.refused = state.routed = True
            return
        answer(flow, response)


async def _run(hook: Callable[[http.HTTPFlow], Any], flow: http.HTTPFlow) -> None:
    result = hook(flow)
    if inspect.isawaitable(result):
        await result


class AfterBody:
    """A later stage whose `requestheaders` work waits for the body on body-first flows
    (`BodyFirst.request` runs it there, for every deferred stage in order).

    Every other hook is the stage's own bound method, copied here at construction:
    mitmproxy looks up every hook (and `addons`) on every addon for every event, so a
    hook the stage lacks must be a plain failed lookup, never a `__getattr__` raising
    AttributeError (that cost ~0.15 ms of CPU per request across the wrapped stages).
    """

    def __init__(self, stage: Any):
        self.stage = stage
        self.name = getattr(stage, "name", type(stage).__name__.lower())
        for name in dir(type(stage)):
            if name.startswith("_") or name == "requestheaders":
                continue
            if callable(inspect.getattr_static(stage, name)):
                setattr(self, name, getattr(stage, name))

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        state = state_of(flow)
        if state is not None and state.body_first:
            return None  # run in `request`, once the body is in (BodyFirst.request)
        return self.stage.requestheaders(flow)
