"""Stage 1, route: `/api/` or `/async/{proxyId or alias}/{path}` to the proxy that will serve it."""

from __future__ import annotations

from mitmproxy import ctx, http

from addons.config import Config
from addons.failsafe import fail_closed
from addons.header_limits import HeaderLimits, bad_method, control_character_in
from addons.responses import DENIED, GATEWAY_ERROR, answer, answered, proxy_error
from addons.snapshot import EMPTY, ProxyView
from addons.state import FlowState, attach
from models import utcnow
from models.target_url import PathEscapeError, ascii_query, canonical_path

API_PREFIX = "/api/"  # the Proxy API: answered by the target
ASYNC_PREFIX = "/async/"  # the Async API: queued, delivered with retries
PREFIXES = (API_PREFIX, ASYNC_PREFIX)
# mitmproxy accepts any `HTTP/x.y` on a request line; the gateway serves these.
HTTP_VERSIONS = frozenset({"HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3"})


def refuse(flow: http.HTTPFlow, state: FlowState, status: int, code: str, message: str, **details):
    state.proxy_code = DENIED
    answer(flow, proxy_error(status, DENIED, code, message, details, state.request_id))


def check_usable(flow: http.HTTPFlow, state: FlowState, proxy: ProxyView) -> bool:
    """Inactive or foreign-region proxies, and disabled targets, never serve. False if refused."""
    state.proxy = proxy
    state.mark("proxyExists", "proxyCredentialExists", "targetExists", "targetCredentialExists")
    state.mark("proxyCredentialRelationship", "targetRelationship", "targetCredentialRelationship")
    region = ctx.options.portcullis_region
    if region and proxy.region != region:
        refuse(
            flow, state, 421, "WRONG_REGION",
            f"Proxy {proxy.id} is served in region {proxy.region}, not here ({region})",
        )  # fmt: skip
        return False
    if not proxy.active:
        refuse(flow, state, 403, "PROXY_INACTIVE", f"Proxy {proxy.id} is inactive")
        return False
    state.mark("proxyActive")
    if not proxy.target.active:
        refuse(flow, state, 403, "TARGET_INACTIVE", f"The target of proxy {proxy.id} is inactive")
        return False
    credential = proxy.target_credential
    if not credential.active or (credential.expires_at and credential.expires_at <= utcnow()):
        refuse(
            flow, state, 403, "TARGET_CREDENTIAL_UNUSABLE",
            f"The target credential of proxy {proxy.id} is inactive or expired",
        )  # fmt: skip
        return False
    state.mark("targetCredentialActive")
    return True


class Route:
    def __init__(self, config: Config):
        self.config = config

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        state = attach(flow, FlowState(snapshot=self.config.snapshot()))
        state.method = flow.request.method
        raw_path, _, query = flow.request.path.partition("?")
        # Raw bytes outside printable ASCII, percent-encoded: the same bytes for the
        # credential check and the rules, and storable and forwardable as they are.
        state.query = ascii_query(query)
        state.caller_fields = flow.request.headers.fields
        if flow.error is not None:
            # mitmproxy refused the request (e.g. both Transfer-Encoding and Content-Length)
            # and runs this hook only to show it; the protocol guard answers the client.
            refuse(flow, state, 400, "MALFORMED_REQUEST", f"Malformed request: {flow.error.msg}")
            return
        if flow.request.http_version not in HTTP_VERSIONS:
            refuse(
                flow, state, 505, "HTTP_VERSION_NOT_SUPPORTED",
                "Use HTTP/1.1 (or HTTP/1.0, HTTP/2)",
            )  # fmt: skip
            return
        # The protocol guard checks HTTP/1 heads before any hook; HTTP/2 ones only here.
        exceeded = HeaderLimits.configured(ctx.options).check_request(flow.request)
        if exceeded is not None:
            state.proxy_code = DENIED
            answer(flow, exceeded.response(state.request_id))
            return
        if bad_method(flow.request.data.method):
            refuse(flow, state, 400, "MALFORMED_REQUEST", "The method is not an HTTP token")
            return
        if (name := control_character_in(state.caller_fields)) is not None:
            refuse(
                flow, state, 400, "MALFORMED_REQUEST", f"Header {name} holds a control character"
            )
            return
        prefix = next((p for p in PREFIXES if raw_path.startswith(p)), None)
        if prefix is None:
            refuse(
                flow, state, 404, "NOT_FOUND",
                "Unknown path; use /api/{proxyId}/{path} or /async/{proxyId}/{path}",
            )  # fmt: skip
            return
        if state.snapshot is EMPTY:
            # Started while the store was unreachable: "unknown proxy" would be a lie.
            state.proxy_code = GATEWAY_ERROR
            message = "The gateway has not loaded its configuration yet; retry shortly"
            answer(flow, proxy_error(503, GATEWAY_ERROR, "CONFIG_NOT_LOADED", message,
                                     request_id=state.request_id))  # fmt: skip
            return
        state.is_async = prefix == ASYNC_PREFIX
        reference, _, rest = raw_path[len(prefix) :].partition("/")
        state.candidates = state.snapshot.candidates(reference)
        if not state.candidates:
            refuse(flow, state, 404, "PROXY_NOT_FOUND", "Unknown proxy")
            return
        try:
            state.path = canonical_path(rest)
        except PathEscapeError as exc:
            refuse(flow, state, 400, "INVALID_PATH", f"Invalid path: {exc}")
            return
        state.mark("requestValid")
        if len(state.candidates) == 1:
            check_usable(flow, state, state.candidates[0])
