"""Stage 5, forward: rewrite to the target URL, swap the credentials, send, settle the answer.

`requestheaders` prepares the upstream request once every check has passed;
the request itself leaves through `UpstreamClient` (addons/upstream.py), never
through mitmproxy's own upstream connection, so timeouts, unreachable targets
and oversized responses end in the gateway's JSON answers. Buffered bodies are
sent from `request`; bodies mitmproxy streams arrive through the stream bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator

from mitmproxy import ctx, exceptions, http

from addons.failsafe import fail_closed
from addons.injection import UnsupportedInjection, prepare_upstream, show_redacted
from addons.responses import (
    DENIED,
    GATEWAY_ERROR,
    GRANTED,
    TARGET_TIMEOUT,
    TARGET_UNREACHABLE,
    TOO_LARGE,
    answer,
    internal_error,
    proxy_error,
    too_large,
)
from addons.ssrf import TargetGuard, TargetRefused, TargetUnresolvable, parse_networks
from addons.state import FlowState, state_of
from addons.stream_bridge import StreamBridge
from addons.target_url import join_target_url
from addons.upstream import (
    BODYLESS_STATUSES,
    ResponseTooLarge,
    TargetTimeout,
    Timeouts,
    UpstreamClient,
    UpstreamFailure,
    UpstreamRequest,
    UpstreamResponse,
)

log = logging.getLogger("portcullis.forward")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class Forward:
    def __init__(self):
        self.guard = TargetGuard()
        self.client: UpstreamClient | None = None
        self.bridge = StreamBridge(self._send_streamed)
        self._started: asyncio.Future | None = None
        self._ready = False  # client and bridge both up

    def load(self, loader) -> None:
        loader.add_option(
            "portcullis_allow_targets",
            str,
            "",
            "Comma-separated addresses or networks targets may resolve to besides public ones "
            "(the SSRF guard refuses loopback, private, link-local and metadata addresses).",
        )
        loader.add_option(
            "portcullis_connect_timeout_ms",
            int,
            10_000,
            "Milliseconds to connect to a target; then 504.",
        )
        loader.add_option(
            "portcullis_target_timeout_ms",
            int,
            60_000,
            "Milliseconds a target may take to start answering, or between reads; then 504.",
        )

    def configure(self, updated) -> None:
        options = ctx.options
        if "portcullis_allow_targets" in updated:
            try:
                self.guard.allowed = parse_networks(options.portcullis_allow_targets)
            except ValueError as exc:
                raise exceptions.OptionsError(f"portcullis_allow_targets: {exc}") from exc
        for name in ("portcullis_connect_timeout_ms", "portcullis_target_timeout_ms"):
            if name in updated and getattr(options, name) < 1:
                raise exceptions.OptionsError(f"{name} must be positive")
        if self.client is not None:
            self.client.timeouts = self._timeouts()

    def done(self) -> None:
        # `done` stays synchronous (mitmproxy's script reload requires it); close on the loop.
        if self._started is None:
            return
        # Without a running loop, the connections are gone with it.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self._close())

    @fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        await self._start()
        state = state_of(flow)
        proxy = state.proxy
        base = proxy.target.base_url
        try:
            # Refuse early, before any body is read; the client checks again when it connects.
            port = base.port or DEFAULT_PORTS[base.scheme]
            await self.guard.allowed_addresses(base.hostname, port)
            state.injection = prepare_upstream(proxy, flow.request.headers, state.query)
        except (TargetRefused, TargetUnresolvable) as exc:
            answer(flow, failure_response(state, exc))
            return
        except UnsupportedInjection as exc:
            state.mark("requestConfigError")
            state.proxy_code = GATEWAY_ERROR
            answer(flow, proxy_error(
                501, GATEWAY_ERROR, "NOT_IMPLEMENTED", str(exc), request_id=state.request_id
            ))  # fmt: skip
            return
        state.upstream = UpstreamRequest(
            flow.request.method,
            join_target_url(base, state.path, state.injection.query),
            tuple(flow.request.headers.items(multi=True)),
        )
        state.proxy_code = GRANTED
        # Whatever mitmproxy might send by itself (a streamed body) goes to the bridge.
        show_redacted(flow.request, self.bridge.route(flow), state.injection)
        flow.comment = f"request {state.request_id} · proxy {proxy.id} · {GRANTED}"

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        """The body is in: merge `proxyAdditionalData` into JSON objects, then send."""
        state = state_of(flow)
        if flow.response is not None or state is None or state.upstream is None:
            return
        if flow.request.stream:
            return  # the body went through the stream bridge, which sent it
        self.bridge.forget(flow)
        body = flow.request.raw_content or b""
        extra = state.proxy.additional_data
        if extra and flow.request.method in BODY_METHODS:
            body = self._merge_additional_data(state, body, extra)
        flow.response = await self._send(flow, state, body)

    async def _send_streamed(self, flow: http.HTTPFlow, chunks: AsyncIterator[bytes]) -> None:
        """The stream bridge's handler: send a streamed body; never raises."""
        state = state_of(flow)
        try:
            await self._send(flow, state, chunks)
        except Exception:
            log.exception("sending a streamed request failed")
            state.mark("systemError")
            state.proxy_code = GATEWAY_ERROR
            state.final_response = internal_error(state.request_id)

    async def _send(
        self, flow: http.HTTPFlow, state: FlowState, body: bytes | AsyncIterator[bytes]
    ) -> http.Response:
        """Send the prepared request; the answer the caller gets, also kept as `final_response`."""
        state.mark("requestSent")
        state.sent_at = time.time()
        try:
            upstream = await self.client.send(
                state.upstream, body, ctx.options.portcullis_max_response_bytes
            )
        except (UpstreamFailure, TargetRefused) as exc:
            state.final_response = failure_response(state, exc)
        else:
            state.mark("responseReceived")
            state.upstream_status = upstream.status
            state.target_answered_at = upstream.finished_at
            state.final_response = to_flow_response(upstream, state.upstream.method)
        show_redacted(flow.request, state.upstream.url, state.injection)
        return state.final_response

    @staticmethod
    def _merge_additional_data(state: FlowState, body: bytes, extra: dict) -> bytes:
        merged = merged_json_body(body, extra)
        if merged is None:
            return body
        if not body:
            headers = (*state.upstream.headers, ("Content-Type", "application/json"))
            state.upstream = dataclasses.replace(state.upstream, headers=headers)
        return merged

    async def _start(self) -> None:
        """Create the client and the bridge on mitmproxy's loop, once."""
        if self._ready:
            return
        if self._started is None:
            self._started = asyncio.ensure_future(self._open())
        await asyncio.shield(self._started)

    async def _open(self) -> None:
        self.client = UpstreamClient(self.guard, self._timeouts(), upstream_ssl_context())
        await self.bridge.start()
        self._ready = True

    async def _close(self) -> None:
        await self.bridge.stop()
        if self.client is not None:
            await self.client.close()

    @staticmethod
    def _timeouts() -> Timeouts:
        return Timeouts(
            connect_s=ctx.options.portcullis_connect_timeout_ms / 1000,
            read_s=ctx.options.portcullis_target_timeout_ms / 1000,
        )


def upstream_ssl_context() -> ssl.SSLContext | bool:
    """TLS toward targets, honouring mitmproxy's own upstream verification options."""
    options = ctx.options
    if options.ssl_insecure:
        return False
    # As in mitmproxy, a configured CA file or directory replaces the system's trust store.
    return ssl.create_default_context(
        cafile=options.ssl_verify_upstream_trusted_ca,
        capath=options.ssl_verify_upstream_trusted_confdir,
    )


def to_flow_response(upstream: UpstreamResponse, method: str) -> http.Response:
    """The target's response as mitmproxy will send it; the body stays encoded as it came."""
    response = http.Response(
        http_version=b"HTTP/1.1",
        status_code=upstream.status,
        reason=upstream.reason.encode("latin-1", "replace"),
        headers=http.Headers(list(upstream.headers)),
        content=upstream.body,
        trailers=None,
        timestamp_start=upstream.headers_at,
        timestamp_end=upstream.finished_at,
    )
    if method != "HEAD" and upstream.status not in BODYLESS_STATUSES:
        response.headers["content-length"] = str(len(upstream.body))
    return response


def failure_response(state: FlowState, exc: Exception) -> http.Response:
    """The gateway's answer when the target could not be used; flags and proxy code set."""
    request_id = state.request_id
    if isinstance(exc, TargetRefused):
        state.validation["requestSent"] = False
        state.mark("requestConfigError")
        state.proxy_code = DENIED
        return proxy_error(
            403, DENIED, "TARGET_ADDRESS_NOT_ALLOWED", str(exc), request_id=request_id
        )
    if isinstance(exc, ResponseTooLarge):
        state.mark("responseReceived")
        state.upstream_status = exc.status
        state.proxy_code = TOO_LARGE
        return too_large(exc.size, ctx.options.portcullis_max_response_bytes, request_id)
    state.validation["requestSent"] = isinstance(exc, UpstreamFailure) and exc.reached
    if isinstance(exc, TargetTimeout):
        state.proxy_code = TARGET_TIMEOUT
        return proxy_error(504, TARGET_TIMEOUT, "TARGET_TIMEOUT", str(exc), request_id=request_id)
    # TargetUnreachable, or TargetUnresolvable from the early check
    state.proxy_code = TARGET_UNREACHABLE
    return proxy_error(
        502, TARGET_UNREACHABLE, "TARGET_UNREACHABLE", str(exc), request_id=request_id
    )


def merged_json_body(body: bytes, extra: dict) -> bytes | None:
    """`{**body, **extra}` for a JSON object body or an empty one; None for any other body."""
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
    else:
        parsed = {}
    return json.dumps({**parsed, **extra}).encode()
