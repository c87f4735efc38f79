"""Stage 5, forward: rewrite to the target URL, swap the credentials, send, settle the answer.

`requestheaders` prepares the upstream request once every check has passed;
the request itself leaves through `UpstreamClient` (addons/upstream.py), never
through mitmproxy's own upstream connection, so timeouts, unreachable targets
and oversized responses end in the gateway's JSON answers. Buffered bodies are
sent from `request`; bodies mitmproxy streams arrive through the stream bridge.
Async API requests stop here: their body is queued (addons/async_queue.py).

Once the target's head is in, `_answer` decides whether its answer is buffered
(no body, a watcher needs it whole, or it came complete at once) or streamed to
the caller as it arrives (addons/response_stream.py, through the stream bridge).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
from collections.abc import AsyncIterator

from mitmproxy import ctx, exceptions, http
from mitmproxy.http import Headers

from addons.async_queue import AsyncQueue
from addons.egress import EgressRouter
from addons.failsafe import fail_closed
from addons.flow_url import point_at
from addons.injection import show_sent, show_target_url, strip_caller_credential
from addons.outbound import (
    IDEMPOTENT_METHODS,
    BodyRefused,
    failure_response,
    refused_body,
    retry_with_new_token,
    to_flow_response,
    token_refusal,
    upstream_request,
    with_additional_data,
)
from addons.response_stream import ResponseStream, discard, register, stream_of
from addons.response_watch import ResponseHead, run_watches, watches_for
from addons.responses import (
    GATEWAY_ERROR,
    GRANTED,
    answer,
    answered,
    body_follows,
    framed_for_bridge,
    internal_error,
    proxy_error,
)
from addons.snapshot import ProxyView
from addons.ssrf import TargetGuard, TargetRefused, TargetUnresolvable, parse_allowances
from addons.state import FlowState, state_of
from addons.stream_bridge import BRIDGE
from addons.tokens.grants import grant_refusal
from addons.tokens.minted import TokenError
from addons.tokens.source import TokenSource
from addons.upstream import (
    EgressFailure,
    NoEgressProxy,
    ResponseTooLarge,
    Timeouts,
    UpstreamClient,
    UpstreamFailure,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamStream,
    read_bounded,
)
from models.credential_parts import UnsupportedInjection, mints_token

log = logging.getLogger("portcullis.forward")
DEFAULT_PORTS = {"http": 80, "https": 443}
# An answer announcing at most this many bytes (not an event stream) is read whole
# before it is passed on, even if it did not come in one piece.
SMALL_ANSWER_BYTES = 64 * 1024


class Forward:
    def __init__(self, queue: AsyncQueue):
        self.queue = queue
        self.guard = TargetGuard()
        self.client: UpstreamClient | None = None
        self.bridge = BRIDGE
        BRIDGE.handle = self._from_bridge
        self._started: asyncio.Future | None = None
        self._ready = False  # client and bridge both up
        # Tokens of oauth2 / customToken target credentials, minted through the same client.
        self.tokens = TokenSource(self.upstream_client)
        self.egress = EgressRouter()  # which proxy, if any, carries each attempt

    def load(self, loader) -> None:
        self.egress.load(loader)
        loader.add_option(
            "portcullis_allow_targets",
            str,
            "",
            "Comma-separated addresses or networks targets, JWKS and other fetched URLs may "
            "resolve to besides public ones (the SSRF guard refuses loopback, private, "
            "link-local and metadata addresses; multicast, broadcast, unspecified and reserved "
            "ones can never be allowed).",
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
            "Milliseconds a target may take to start answering (then 504), or between two "
            "reads of its answer (then a streamed answer is cut); there is no total timeout.",
        )
        loader.add_option(
            "portcullis_upstream_client",
            str,
            "lean",
            "The HTTP client of direct routes to targets: lean (httptools, "
            "addons/lean_upstream.py) or aiohttp. Egress through proxies always uses aiohttp.",
            choices=("lean", "aiohttp"),
        )

    def configure(self, updated) -> None:
        options = ctx.options
        if "portcullis_allow_targets" in updated:
            try:
                self.guard.allowed = parse_allowances(options.portcullis_allow_targets)
            except ValueError as exc:
                raise exceptions.OptionsError(f"portcullis_allow_targets: {exc}") from exc
        for name in ("portcullis_connect_timeout_ms", "portcullis_target_timeout_ms"):
            if name in updated and getattr(options, name) < 1:
                raise exceptions.OptionsError(f"{name} must be positive")
        if "portcullis_egress_refresh_ms" in updated:
            try:
                self.egress.configure(options.portcullis_egress_refresh_ms)
            except ValueError as exc:
                raise exceptions.OptionsError(str(exc)) from exc
        if self.client is not None:
            self.client.timeouts = self._timeouts()

    def running(self) -> None:
        self.egress.running()

    def done(self) -> None:
        self.egress.done()
        # `done` stays synchronous (mitmproxy's script reload requires it); close on the loop.
        if self._started is None:
            return
        # Without a running loop, the connections are gone with it.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self._close())

    @fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        if not self._ready:
            await self.start()
        state = state_of(flow)
        proxy = state.proxy
        base = proxy.target.base_url
        try:
            # Refuse early, before any body is read; the client checks again when it connects.
            if self.guard.checked(base.hostname) is None:
                port = base.port or DEFAULT_PORTS[base.scheme]
                await self.guard.allowed_addresses(base.hostname, port)
            proxy.injection_plan  # noqa: B018  can the target credential be injected at all?
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
        token = None
        refusal = grant_refusal(proxy.target_credential)  # pending or to reconnect: known now
        if refusal is not None:
            answer(flow, token_refusal(state, refusal))
            return
        if mints_token(proxy.target_credential) and not state.is_async:
            try:
                token = (await self.tokens.token(proxy.target_credential)).value
            except TokenError as exc:
                answer(flow, token_refusal(state, exc))
                return
        # What goes on is built from the headers as the caller sent them, apart from the
        # flow, whose request only ever shows it with every secret blanked.
        sent = Headers(state.caller_fields)
        query = strip_caller_credential(proxy.proxy_credential, sent, state.query)
        if state.is_async:
            state.stored_request = (tuple(sent.items(multi=True)), query)
        else:
            state.upstream, state.injection = upstream_request(
                proxy, flow.request.method, state.path, sent, query, token
            )
        state.proxy_code = GRANTED
        state.routed = True
        # Whatever mitmproxy might send by itself (a streamed body) goes to the bridge.
        bridge_url = self.bridge.route(flow) if body_follows(flow.request) else None
        show_sent(flow.request, sent, state.injection, bridge_url)
        framed_for_bridge(flow.request)

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        """The body is in: queue it (Async API) or send it (Proxy API)."""
        state = state_of(flow)
        if answered(flow) or state is None or not state.routed:
            return
        if flow.request.stream:
            return  # the body went through the stream bridge, which handled it
        self.bridge.forget(flow)
        body = flow.request.raw_content or b""
        if state.is_async:
            flow.response = state.final_response = await self.queue.accept(state, body)
            return
        response = await self._send(flow, state, body)
        if response is None:
            # The answer streams: mitmproxy fetches it from the bridge, chunk by chunk.
            point_at(flow.request, self.bridge.route(flow))
        else:
            flow.response = response

    async def _from_bridge(
        self, flow: http.HTTPFlow, chunks: AsyncIterator[bytes]
    ) -> ResponseStream | None:
        """The stream bridge's handler: the answer to stream, if it streams; else the settled
        answer is `state.final_response`. A streamed request body is queued or sent first.
        Never raises."""
        stream = stream_of(flow)
        if stream is not None:
            return stream  # the request was sent already (`request`); its answer streams
        state = state_of(flow)
        try:
            if state.is_async:
                state.final_response = await self.queue.accept_stream(state, chunks)
            else:
                await self._send(flow, state, chunks)
        except Exception:
            log.exception("handling a streamed request failed")
            discard(flow)
            state.mark("systemError")
            state.proxy_code = GATEWAY_ERROR
            state.final_response = internal_error(state.request_id)
        return stream_of(flow)

    async def _send(
        self, flow: http.HTTPFlow, state: FlowState, body: bytes | AsyncIterator[bytes]
    ) -> http.Response | None:
        """Send the prepared request; the answer the caller gets, also kept as
        `final_response`, or None when the answer streams (`stream_of(flow)`)."""
        original = body
        if isinstance(body, bytes):
            try:
                state.upstream, body = with_additional_data(state.proxy, state.upstream, body)
            except BodyRefused as exc:
                state.final_response = refused_body(state, exc)
                show_target_url(flow.request, state.upstream.url, state.injection)
                return state.final_response
        state.mark("requestSent")
        state.sent_at = time.time()
        try:
            opened = await self._open(state, state.upstream, body)
            if isinstance(original, bytes) and retry_with_new_token(
                state.upstream.method, opened.status, state.injection
            ):
                opened.close()
                opened = await self._with_new_token(state, original)
            state.final_response = await self._answer(flow, state, opened)
        except (UpstreamFailure, TargetRefused) as exc:
            state.final_response = failure_response(state, exc)
        except TokenError as exc:
            state.final_response = token_refusal(state, exc)
        show_target_url(flow.request, state.upstream.url, state.injection)
        return state.final_response

    async def _answer(
        self, flow: http.HTTPFlow, state: FlowState, opened: UpstreamStream
    ) -> http.Response | None:
        """Buffered or streamed, decided on the target's head (design §1, in this order):
        no body; an announced length over the limit (413); a watcher needs the body whole,
        or it is a small one of announced length (read bounded); the body came complete at
        once; else it streams (None)."""
        limit = response_limit(state.proxy)
        streaming = False
        try:
            head = ResponseHead(opened.method, opened.status, opened.headers)
            if opened.bodyless:
                whole, watches = watches_for(state.watchers, head)
                body = b""
            else:
                announced = opened.content_length
                if limit and announced is not None and announced > limit:
                    raise ResponseTooLarge(opened.status, announced, limit)
                whole, watches = watches_for(state.watchers, head)
                small = announced is not None and announced <= SMALL_ANSWER_BYTES
                if whole or (small and not head.is_event_stream):
                    # Whole, never unbounded even without a limit on streams. A small answer
                    # of known length is waited for too: the bridge would cost more than it.
                    bound = whole_body_limit(state.proxy)
                    body = (await read_bounded(opened, opened.method, bound)).body
                else:
                    body = opened.available()
                    if limit and len(body) > limit:
                        raise ResponseTooLarge(opened.status, None, limit)
                    if not opened.at_eof:
                        streaming = True
            state.mark("responseReceived")
            state.upstream_status = opened.status
            if streaming:
                register(flow, ResponseStream(
                    state, opened, watches, limit, body, ctx.options.portcullis_log_body_bytes
                ))  # fmt: skip
                return None
        finally:
            if not streaming:
                opened.close()
        state.target_answered_at = time.time()
        state.response_bytes = len(body)
        body = run_watches(watches, body, final=True)
        upstream = UpstreamResponse(
            status=opened.status,
            reason=opened.reason,
            headers=opened.headers,
            body=body,
            headers_at=opened.headers_at,
            finished_at=state.target_answered_at,
        )
        return to_flow_response(upstream, opened.method)

    async def _with_new_token(self, state: FlowState, body: bytes) -> UpstreamStream:
        """The target refused the minted token (401): mint anew, send once more.

        Raises `TokenError` when no new token can be had (the caller gets that answer).
        """
        proxy, refused = state.proxy, state.injection
        token = await self.tokens.token(proxy.target_credential, rejected=refused.token)
        sent = Headers(state.caller_fields)
        query = strip_caller_credential(proxy.proxy_credential, sent, state.query)
        state.upstream, injection = upstream_request(
            proxy, state.upstream.method, state.path, sent, query, token.value
        )
        # The refused token stays a secret too: redacted wherever the first answer shows up.
        state.injection = dataclasses.replace(
            injection, secrets=(*injection.secrets, *refused.secrets)
        )
        state.upstream, body = with_additional_data(proxy, state.upstream, body)
        state.sent_at = time.time()
        return await self._open(state, state.upstream, body)

    async def send(
        self,
        state: FlowState,
        request: UpstreamRequest,
        body: bytes | AsyncIterator[bytes],
        max_body: int,
        timeouts: Timeouts | None = None,
    ) -> UpstreamResponse:
        """One attempt for `state`'s proxy, its answer read whole (at most `max_body` bytes);
        see `_open`. Raises `UpstreamFailure` (`ResponseTooLarge` among them)."""
        opened = await self._open(state, request, body, timeouts)
        return await read_bounded(opened, request.method, max_body)

    async def _open(
        self,
        state: FlowState,
        request: UpstreamRequest,
        body: bytes | AsyncIterator[bytes],
        timeouts: Timeouts | None = None,
    ) -> UpstreamStream:
        """Send one attempt for `state`'s proxy through its target's egress (`state.egress`);
        the answer once its head is in.

        A pool member that cannot carry it is marked down, and a buffered request goes once
        more through another member when nothing reached the target or the method may be
        repeated. Raises `UpstreamFailure` (`NoEgressProxy`, `EgressFailure` among them).
        """
        proxy = state.proxy
        state.egress = route = await self.egress.route(proxy.id, proxy.target.egress)
        try:
            return await self.client.open(request, body, timeouts, egress=route)
        except EgressFailure as failure:
            self.egress.failed(route, in_store=not failure.refused_address)
            again = route.kind == "pool" and isinstance(body, bytes)
            if not again or (failure.reached and request.method not in IDEMPOTENT_METHODS):
                raise
            try:
                state.egress = route = await self.egress.route(proxy.id, proxy.target.egress)
            except NoEgressProxy:
                raise failure from None  # no other member: the first failure is the answer
        try:
            return await self.client.open(request, body, timeouts, egress=route)
        except EgressFailure as failure:
            self.egress.failed(route, in_store=not failure.refused_address)
            raise

    async def upstream_client(self) -> UpstreamClient:
        """The process's one upstream client, started on first use.

        Everything the gateway sends on a tenant's behalf leaves through it:
        forwarded requests, async deliveries, and documents (addons/fetch.py).
        """
        if not self._ready:
            await self.start()
        return self.client

    async def start(self) -> None:
        """Create the client and the bridge on mitmproxy's loop, once (the dispatcher too)."""
        if self._ready:
            return
        if self._started is None:
            self._started = asyncio.ensure_future(self._start_client())
        await asyncio.shield(self._started)

    async def _start_client(self) -> None:
        self.client = UpstreamClient(
            self.guard,
            self._timeouts(),
            upstream_ssl_context(),
            client=ctx.options.portcullis_upstream_client,
        )
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


def response_limit(proxy: ProxyView) -> int:
    """The bytes of a target's answer this proxy's callers may get: the proxy's own
    `max_response_bytes`, else the gateway's option; 0 means no limit (streams only)."""
    if proxy.max_response_bytes is not None:
        return proxy.max_response_bytes
    return ctx.options.portcullis_max_response_bytes


def whole_body_limit(proxy: ProxyView) -> int:
    """The most of a target's answer read whole into memory for this proxy: its limit,
    never unbounded (a proxy without a limit on streams: the gateway's option)."""
    return response_limit(proxy) or ctx.options.portcullis_max_response_bytes
