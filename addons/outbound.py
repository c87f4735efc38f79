"""What goes to the target and what the caller gets back, for the Proxy API and async delivery.

The forward stage and the async dispatcher build the upstream request with
the same functions, so a job is delivered exactly as a synchronous request
would have been: same URL joining, same injection, same additional data.
"""

from __future__ import annotations

import dataclasses
import json
import re

from mitmproxy import http
from mitmproxy.http import Headers

from addons.injection import Injection, inject_target_credential
from addons.responses import (
    DENIED,
    GATEWAY_ERROR,
    TARGET_TIMEOUT,
    TARGET_UNREACHABLE,
    TOO_LARGE,
    new_response,
    proxy_error,
    too_large,
)
from addons.snapshot import ProxyView
from addons.ssrf import TargetRefused
from addons.state import FlowState
from addons.tokens.minted import TokenError
from addons.upstream import (
    BODYLESS_STATUSES,
    EgressFailure,
    EgressUnusable,
    NoEgressProxy,
    ResponseTooLarge,
    TargetTimeout,
    UpstreamFailure,
    UpstreamRequest,
    UpstreamResponse,
)
from models.json_limits import MAX_DEPTH, JsonTooDeep, loads
from models.target_url import join_target_url

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Methods sent once more, with a new token, when the target refused the minted one (401).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# JSON whitespace and a UTF-8 byte order mark before a body's first character.
_LEADING = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*")


class BodyRefused(ValueError):
    """A body that looks like a JSON object but cannot be merged with the proxy's
    additional data; forwarding it unmerged would drop data the proxy promises."""


def upstream_request(
    proxy: ProxyView, method: str, path: str, headers: Headers, query: str, token: str | None = None
) -> tuple[UpstreamRequest, Injection]:
    """The request for the target: `headers` and `query` (the caller's credential already
    removed) with the target credential (`token`: a minted one) and the proxy's additions;
    `headers` changes in place."""
    injection = inject_target_credential(proxy, headers, query, token)
    url = join_target_url(proxy.target.base_url, path, injection.query)
    return UpstreamRequest(method, url, tuple(headers.items(multi=True))), injection


def with_additional_data(
    proxy: ProxyView, request: UpstreamRequest, body: bytes
) -> tuple[UpstreamRequest, bytes]:
    """`proxyAdditionalData` merged into a JSON object body of POST / PUT / PATCH.

    Raises `BodyRefused` for a body that starts like a JSON object but is not one
    the gateway can parse (see `merged_json_body`).
    """
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
    response = new_response(
        upstream.status,
        upstream.reason.encode("latin-1", "replace"),
        http.Headers(upstream.headers),
        upstream.body,
        upstream.headers_at,
        upstream.finished_at,
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
        state.upstream_failure = "too_large"
        state.mark("responseReceived")
        state.upstream_status = exc.status
        state.proxy_code = TOO_LARGE
        return too_large(exc.size, exc.limit, request_id)
    reached = isinstance(exc, UpstreamFailure) and exc.reached
    state.validation["requestSent"] = reached
    if isinstance(exc, NoEgressProxy | EgressFailure | EgressUnusable):
        state.upstream_failure = "egress"
        return egress_failure(state, exc)
    if isinstance(exc, TargetTimeout):
        state.upstream_failure = "timeout"
        state.proxy_code = TARGET_TIMEOUT
        return proxy_error(504, TARGET_TIMEOUT, "TARGET_TIMEOUT", str(exc), request_id=request_id)
    # TargetUnreachable, or TargetUnresolvable from the early check
    state.upstream_failure = "broken_answer" if reached else "unreachable"
    state.proxy_code = TARGET_UNREACHABLE
    return proxy_error(
        502, TARGET_UNREACHABLE, "TARGET_UNREACHABLE", str(exc), request_id=request_id
    )


def egress_failure(state: FlowState, exc: UpstreamFailure) -> http.Response:
    """502 when the target's egress could not carry the request: no free pool member
    (`NO_EGRESS_PROXY`), or the proxy failed or cannot be used (`EGRESS_PROXY_FAILED`).
    The proxy's address and credentials are never in it (the request log names the proxy)."""
    state.proxy_code = GATEWAY_ERROR
    if isinstance(exc, NoEgressProxy):
        message = "No egress proxy is available for this target: " + str(exc)
        return proxy_error(502, GATEWAY_ERROR, "NO_EGRESS_PROXY", message, None, state.request_id)
    message = "The target's egress proxy could not carry the request: " + str(exc)
    return proxy_error(502, GATEWAY_ERROR, "EGRESS_PROXY_FAILED", message, None, state.request_id)


def token_refusal(state: FlowState, exc: TokenError) -> http.Response:
    """The answer when no token could be minted for the target credential (none is sent)."""
    state.mark("requestConfigError")
    state.proxy_code = GATEWAY_ERROR
    return proxy_error(
        exc.status,
        GATEWAY_ERROR,
        exc.code,
        exc.message,
        {"credentialId": state.proxy.target_credential.id},
        state.request_id,
    )


def retry_with_new_token(method: str, status: int, injection: Injection | None) -> bool:
    """Whether to mint anew and send once more: the target refused a minted token (401)
    of a request that may be repeated."""
    return (
        status == 401
        and method in IDEMPOTENT_METHODS
        and injection is not None
        and injection.token is not None
    )


def refused_body(state: FlowState, exc: BodyRefused) -> http.Response:
    """400 for a body the proxy's additional data could not be merged into; nothing was sent."""
    state.validation["requestValid"] = False
    state.validation["requestSent"] = False
    state.proxy_code = DENIED
    return proxy_error(
        400, DENIED, "INVALID_JSON", str(exc), {"maxDepth": MAX_DEPTH}, state.request_id
    )


def check_additional_data(proxy: ProxyView, method: str, body: bytes) -> None:
    """Raise `BodyRefused` now if `with_additional_data` would refuse `body` later
    (the Async API checks before it accepts a job)."""
    if proxy.additional_data and method in BODY_METHODS:
        merged_json_body(body, proxy.additional_data)


def merged_json_body(body: bytes, extra: dict) -> bytes | None:
    """`{**body, **extra}` for a JSON object body or an empty one; None for any other body.

    A body whose first character (after whitespace) is `{` is meant as a JSON
    object: if it is not one the gateway can parse (broken, nested deeper than
    `MAX_DEPTH`, NaN, lone surrogates), `BodyRefused` is raised rather than
    sending it without the additional data (a lenient target might still read
    the caller's fields that the additional data was meant to override).
    Arrays, text and binary bodies are forwarded unmerged, unparsed.
    """
    if not body:
        return json.dumps(extra).encode()
    start = _LEADING.match(body).end()
    if body[start : start + 1] != b"{" and not _utf16_or_32_object(body):
        return None
    try:
        parsed = loads(body)
    except JsonTooDeep as exc:
        raise BodyRefused(
            f"The JSON body nests arrays and objects deeper than {MAX_DEPTH} levels; "
            "this proxy adds data to JSON bodies and could not"
        ) from exc
    except ValueError as exc:
        raise BodyRefused(
            f"The body starts like a JSON object but is not valid JSON ({exc}); "
            "this proxy adds data to JSON bodies and could not"
        ) from exc
    if not isinstance(parsed, dict):
        raise BodyRefused("The body is not a JSON object")  # unreachable after `{`
    return json.dumps({**parsed, **extra}).encode()


def _utf16_or_32_object(body: bytes) -> bool:
    """Whether a UTF-16 or UTF-32 body (as `json.loads` detects them) starts with `{`."""
    encoding = json.detect_encoding(body)
    if encoding.startswith("utf-8"):
        return False
    return body.decode(encoding, "replace").lstrip(" \t\r\n\ufeff").startswith("{")
