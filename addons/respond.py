"""Stage 6, respond: settle what the caller receives, add the proxy-code headers, annotate."""

from __future__ import annotations

from mitmproxy import http

from addons.failsafe import fail_closed
from addons.injection import conceal_caller_credential, show_target_url
from addons.ratelimit_headers import ratelimit_headers
from addons.response_stream import discard, stream_of
from addons.responses import (
    GATEWAY_ERROR,
    GRANTED,
    PROXY_CODE,
    PROXY_MESSAGE,
    REQUEST_ID,
    internal_error,
)
from addons.state import state_of


class Respond:
    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Blank the caller's credential before mitmweb first shows the flow.

        mitmweb's view takes the flow right after the addons' `requestheaders`;
        authenticate blanks what it read, this covers flows refused before it.
        """
        self._conceal(flow)

    @fail_closed
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """A streamed answer's head, settled before mitmproxy sends it on: the target's
        status and headers (mitmproxy's own from the bridge never reach the caller), the
        proxy-code, request-id and RateLimit headers; its body then streams."""
        stream = stream_of(flow)
        state = state_of(flow)
        if stream is None or state is None or flow.response is None:
            return
        stream.caller_head(flow.response, http2=flow.request.is_http2)
        state.final_response = flow.response
        # Granted: the pump may already have cut the stream (its proxy code says so in the
        # request log), but the head the caller gets is the granted one it was.
        self._granted(flow.response.headers, state.request_id)
        self._limit_headers(flow)
        # The request went to the bridge; the flow shows where it really went.
        show_target_url(flow.request, state.upstream.url, state.injection)

    @fail_closed
    def response(self, flow: http.HTTPFlow) -> None:
        if state_of(flow) is not None and stream_of(flow) is not None:
            self._annotate(flow)  # the head was settled in `responseheaders`, the body passed
            return
        try:
            self._settle(flow)
            self._limit_headers(flow)
        finally:
            self._annotate(flow)  # even if settling failed: mitmdump prints the flow next

    def error(self, flow: http.HTTPFlow) -> None:
        stream = stream_of(flow)
        if stream is not None and not stream.started:
            discard(flow)  # never fetched from the bridge: the target's answer is dropped
        elif stream is not None:
            stream.caller_left()  # unless the pump cut it (then settled already)
        self._annotate(flow)

    @staticmethod
    def _settle(flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None or not state.routed:
            return  # refused before it was granted: the refusing stage answered
        if flow.response is not state.final_response:
            # mitmproxy's own upstream answer, which can only be the stream bridge's
            # (empty, so mitmproxy buffered it): send the settled response instead.
            if state.final_response is None:
                state.mark("systemError")
                state.proxy_code = GATEWAY_ERROR
                state.final_response = internal_error(state.request_id)
            flow.response = state.final_response
        if state.proxy_code == GRANTED:
            Respond._granted(flow.response.headers, state.request_id)

    @staticmethod
    def _granted(headers: http.Headers, request_id: str) -> None:
        headers[PROXY_CODE] = GRANTED
        headers[PROXY_MESSAGE] = "Proxy authentication successful"
        headers[REQUEST_ID] = request_id

    @staticmethod
    def _limit_headers(flow: http.HTTPFlow) -> None:
        """`RateLimit-Policy` / `RateLimit` (and the warning) on every counted request's answer."""
        state = state_of(flow)
        if state is None or state.limit_check is None or flow.response is None:
            return
        for name, value in ratelimit_headers(state.limit_check):
            flow.response.headers.add(name, value)

    @staticmethod
    def _annotate(flow: http.HTTPFlow) -> None:
        """What mitmweb shows: request id, proxy code and deciding rule; refusals marked; the
        caller's credential blanked (the injected one already is, see the forward stage)."""
        Respond._conceal(flow)
        state = state_of(flow)
        if state is None:
            return
        state.finish()
        decision = state.decision
        rule = decision.rule_id if decision and decision.rule_id else "default"
        flow.comment = f"request {state.request_id} · {state.proxy_code} · rule {rule}"
        if state.proxy_code != GRANTED:
            flow.marked = ":no_entry:"

    @staticmethod
    def _conceal(flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        proxies = ((state.proxy,) if state.proxy else state.candidates) if state else ()
        conceal_caller_credential(flow.request, [proxy.proxy_credential for proxy in proxies])
