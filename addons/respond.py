"""Stage 6, respond: the size limit, the proxy-code headers, and what mitmweb shows."""

from __future__ import annotations

import json

from mitmproxy import ctx, http

from addons.failsafe import fail_closed
from addons.responses import GRANTED, PROXY_CODE, PROXY_MESSAGE, REQUEST_ID, replace_before_body
from addons.state import FlowState, state_of

TOO_LARGE = "response-too-large"
REDACTED = "[REDACTED]"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.2f}".rstrip("0").rstrip(".") + " MB"


def too_large(size: int, limit: int, request_id: str) -> http.Response:
    """Seed 002's 413 body, with the proxy-code headers."""
    body = {
        "error": "Payload Too Large",
        "message": "The response from the target API is too large to return directly.",
        "responseSize": _megabytes(size),
        "limit": _megabytes(limit),
        "suggestion": "Consider using pagination or requesting smaller data sets.",
    }
    headers = {
        "Content-Type": "application/json",
        PROXY_CODE: TOO_LARGE,
        PROXY_MESSAGE: f"Response payload exceeds {_megabytes(limit)} limit",
        REQUEST_ID: request_id,
    }
    return http.Response.make(413, json.dumps(body).encode(), headers)


def redact_injected(flow: http.HTTPFlow, state: FlowState) -> None:
    """After sending, blank the injected secrets in the copy mitmweb shows."""
    if not state.injected_values:
        return
    headers = flow.request.headers
    for name, value in list(headers.items(multi=True)):
        if any(secret in value for secret in state.injected_values):
            headers[name] = REDACTED
    if any(secret in flow.request.path for secret in state.injected_values):
        query = flow.request.query
        for name, value in list(query.items(multi=True)):
            if value in state.injected_values:
                query[name] = REDACTED


class Respond:
    @fail_closed
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None or state.proxy_code != GRANTED or not state.validation["requestSent"]:
            return
        state.mark("responseReceived")
        response = flow.response
        state.upstream_status = response.status_code
        limit = ctx.options.portcullis_max_response_bytes
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            state.proxy_code = TOO_LARGE
            replace_before_body(response, too_large(int(length), limit, state.request_id))
            return
        response.headers[PROXY_CODE] = GRANTED
        response.headers[PROXY_MESSAGE] = "Proxy authentication successful"
        response.headers[REQUEST_ID] = state.request_id

    @fail_closed
    def response(self, flow: http.HTTPFlow) -> None:
        self._annotate(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._annotate(flow)

    @staticmethod
    def _annotate(flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None:
            return
        redact_injected(flow, state)
        decision = state.decision
        rule = decision.rule_id if decision and decision.rule_id else "default"
        flow.comment = f"request {state.request_id} · {state.proxy_code} · rule {rule}"
        if state.proxy_code != GRANTED:
            flow.marked = ":no_entry:"
