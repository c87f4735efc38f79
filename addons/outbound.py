"""What goes to the target and what the caller gets back, for the Proxy API and async delivery.

The forward stage and the async dispatcher build the upstream request with
the same functions, so a job is delivered exactly as a synchronous request
would have been: same URL joining, same injection, same additional data.
"""

from __future__ import annotations

import dataclasses
import json

from mitmproxy import ctx, http
from mitmproxy.http import Headers

from addons.injection import Injection, inject_target_credential
from addons.responses import (
    DENIED,
    TARGET_TIMEOUT,
    TARGET_UNREACHABLE,
    TOO_LARGE,
    proxy_error,
    too_large,
)
from addons.snapshot import ProxyView
from addons.ssrf import TargetRefused
from addons.state import FlowState
from addons.upstream import (
    BODYLESS_STATUSES,
    ResponseTooLarge,
    TargetTimeout,
    UpstreamFailure,
    UpstreamRequest,
    UpstreamResponse,
)
from models.target_url import join_target_url

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def upstream_request(
    proxy: ProxyView, method: str, path: str, headers: Headers, query: str
) -> tuple[UpstreamRequest, Injection]:
    """The request for the target: `headers` and `query` (the caller's credential already
    removed) with the target credential and the proxy's additions; `headers` changes in place."""
    injection = inject_target_credential(proxy, headers, query)
    url = join_target_url(proxy.target.base_url, path, injection.query)
    return UpstreamRequest(method, url, tuple(headers.items(multi=True))), injection


def with_additional_data(
    proxy: ProxyView, request: UpstreamRequest, body: bytes
) -> tuple[UpstreamRequest, bytes]:
    """`proxyAdditionalData` merged into a JSON object body of POST / PUT / PATCH."""
    extra = proxy.additional_data
    if not extra or request.method not in BODY_METHODS:
        return request, body
    merged = merged_json_body(body, extra)
    if merged is None:
        return request, body
    if not body:
        headers = (*request.headers, ("Content-Type", "application/json"))
        request = dataclasses.replace(request, headers=headers)
    return request, merged


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
