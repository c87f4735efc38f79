"""Responses the gateway itself gives, with the `requestrocket-proxy-*` headers."""

from __future__ import annotations

import json

from mitmproxy import http

from addons.flow_url import point_at
from addons.state import state_of
from addons.stream_bridge import BRIDGE

PROXY_CODE = "requestrocket-proxy-code"
PROXY_MESSAGE = "requestrocket-proxy-message"
REQUEST_ID = "portcullis-request-id"

GRANTED = "proxy-access-granted"
DENIED = "proxy-access-denied"
GATEWAY_ERROR = "gateway-error"
TARGET_UNREACHABLE = "target-unreachable"
TARGET_TIMEOUT = "target-timeout"
TOO_LARGE = "response-too-large"


def new_response(
    status: int,
    reason: bytes,
    headers: http.Headers,
    content: bytes,
    timestamp_start: float,
    timestamp_end: float | None,
) -> http.Response:
    """What `http.Response(b"HTTP/1.1", status, reason, headers, content, None, start, end)`
    builds, for parts that already have their types.

    mitmproxy's constructor runs a type check of every field (`MessageData.__post_init__`,
    only under `__debug__`): about 17 µs of the event loop per answer. The gateway builds an
    answer for every forwarded request, so it fills the same data in directly;
    tests/test_new_response.py compares the two for every kind of answer it builds.
    """
    data = object.__new__(http.ResponseData)
    data.__dict__.update(
        http_version=b"HTTP/1.1",
        status_code=status,
        reason=reason,
        headers=headers,
        content=content,
        trailers=None,
        timestamp_start=timestamp_start,
        timestamp_end=timestamp_end,
    )
    response = object.__new__(http.Response)
    response.data = data
    return response


def proxy_error(
    status: int,
    proxy_code: str,
    code: str,
    message: str,
    details: dict | None = None,
    request_id: str | None = None,
) -> http.Response:
    """A JSON error in the Core API's envelope, with the proxy-code headers."""
    body = {
        "message": message,
        "error": {"code": code, "message": message, "details": details or {}},
    }
    headers = {"Content-Type": "application/json", PROXY_CODE: proxy_code, PROXY_MESSAGE: message}
    if request_id:
        headers[REQUEST_ID] = request_id
    return http.Response.make(status, json.dumps(body).encode(), headers)


def internal_error(request_id: str | None = None) -> http.Response:
    return proxy_error(
        500,
        GATEWAY_ERROR,
        "INTERNAL_ERROR",
        "The gateway failed to process this request; nothing was forwarded",
        request_id=request_id,
    )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.2f}".rstrip("0").rstrip(".") + " MB"


def too_large(size: int | None, limit: int, request_id: str) -> http.Response:
    """Seed 002's 413 body, with the proxy-code headers.

    `size` is None when the target sent no length and reading stopped at the limit.
    """
    body = {
        "error": "Payload Too Large",
        "message": "The response from the target API is too large to return directly.",
        "responseSize": _megabytes(size) if size is not None else f"more than {_megabytes(limit)}",
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


def replace_before_body(response: http.Response, replacement: http.Response) -> None:
    """Turn an upstream response whose body has not been read yet into `replacement`.

    Used from `responseheaders`: the status and headers are swapped and the
    upstream body is read and dropped chunk by chunk, never held in memory.
    """
    body = replacement.content or b""
    response.status_code = replacement.status_code
    response.reason = replacement.reason
    response.headers.clear()
    for name, value in replacement.headers.items(multi=True):
        response.headers.add(name, value)
    response.headers["content-length"] = str(len(body))
    # Returning [] drops a chunk; b"" would end a chunked body early (see mitmproxy notes §0.7).
    response.stream = lambda chunk: body if chunk == b"" else []


def replace_response(response: http.Response, replacement: http.Response) -> None:
    """Turn a buffered `response` into `replacement` in place (the flow and the state share it)."""
    response.status_code = replacement.status_code
    response.reason = replacement.reason
    response.headers.clear()
    for name, value in replacement.headers.items(multi=True):
        response.headers.add(name, value)
    response.raw_content = replacement.raw_content
    response.headers["content-length"] = str(len(replacement.raw_content or b""))


def body_follows(request: http.Request) -> bool:
    """Whether a request body may still be coming (only true before the `request` hook).

    HTTP/2 and HTTP/3 frame a body without Content-Length or Transfer-Encoding, and the
    flow does not say whether the headers ended the stream: such a request may have one.
    """
    if request.raw_content is not None:
        return False
    length = request.headers.get("content-length", "")
    if length.isdigit():
        return int(length) > 0
    return "transfer-encoding" in request.headers or request.is_http2 or request.is_http3


def framed_for_bridge(request: http.Request) -> None:
    """Give an HTTP/2 or HTTP/3 request without a length chunked framing, for what
    mitmproxy sends to the stream bridge over HTTP/1.1 (it would send the body unframed).
    Only the flow's request changes: the target's headers come from `caller_fields`."""
    if (request.is_http2 or request.is_http3) and "content-length" not in request.headers:
        request.headers["transfer-encoding"] = "chunked"


def answer(flow: http.HTTPFlow, response: http.Response) -> None:
    """Answer `flow` locally instead of forwarding it.

    mitmproxy cannot hold a response for a request whose body is still coming
    once that body grows past `stream_large_bodies` (it switches to streaming
    and refuses). So such a body is streamed into the stream bridge's sink and
    dropped, and the respond stage sends `response` when the sink replies.
    """
    state = state_of(flow)
    if state is not None and BRIDGE.running and body_follows(flow.request):
        state.final_response = response
        state.refused = state.routed = True
        point_at(flow.request, BRIDGE.sink_url())
        framed_for_bridge(flow.request)
        flow.request.stream = True
        return
    flow.request.stream = False
    flow.response = response


def answered(flow: http.HTTPFlow) -> bool:
    """Whether an earlier stage answered the flow; later stages then leave it alone."""
    if flow.response is not None:
        return True
    state = state_of(flow)
    return state is not None and state.refused
