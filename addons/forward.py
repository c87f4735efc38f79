"""Stage 5, forward: rewrite to the target URL and swap the caller's credential for the target's.

Runs in `requestheaders`, so a streamed request body can only ever go to the
target, with the target credential, after every check has passed.
"""

from __future__ import annotations

import json
import time

from mitmproxy import ctx, exceptions, http

from addons.failsafe import fail_closed
from addons.injection import UnsupportedInjection, prepare_upstream
from addons.responses import (
    DENIED,
    GATEWAY_ERROR,
    GRANTED,
    TARGET_UNREACHABLE,
    answer,
    proxy_error,
)
from addons.ssrf import TargetGuard, TargetRefused, TargetUnresolvable, parse_networks
from addons.state import state_of
from addons.target_url import join_target_url

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class Forward:
    def __init__(self):
        self.guard = TargetGuard()

    def load(self, loader) -> None:
        loader.add_option(
            "portcullis_allow_targets",
            str,
            "",
            "Comma-separated addresses or networks targets may resolve to besides public ones "
            "(the SSRF guard refuses loopback, private, link-local and metadata addresses).",
        )

    def configure(self, updated) -> None:
        if "portcullis_allow_targets" in updated:
            try:
                self.guard.allowed = parse_networks(ctx.options.portcullis_allow_targets)
            except ValueError as exc:
                raise exceptions.OptionsError(f"portcullis_allow_targets: {exc}") from exc

    @fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        state = state_of(flow)
        proxy = state.proxy
        target = proxy.target.base_url
        try:
            await self.guard.check(target.hostname, target.port or DEFAULT_PORTS[target.scheme])
        except TargetRefused as exc:
            state.mark("requestConfigError")
            state.proxy_code = DENIED
            answer(flow, proxy_error(
                403, DENIED, "TARGET_ADDRESS_NOT_ALLOWED", str(exc), request_id=state.request_id
            ))  # fmt: skip
            return
        except TargetUnresolvable as exc:
            state.proxy_code = TARGET_UNREACHABLE
            answer(flow, proxy_error(
                502, TARGET_UNREACHABLE, "TARGET_UNREACHABLE", str(exc), request_id=state.request_id
            ))  # fmt: skip
            return
        try:
            query, state.injected_values = prepare_upstream(
                proxy, flow.request.headers, state.query
            )
        except UnsupportedInjection as exc:
            state.mark("requestConfigError")
            state.proxy_code = GATEWAY_ERROR
            answer(
                flow,
                proxy_error(
                    501, GATEWAY_ERROR, "NOT_IMPLEMENTED", str(exc), request_id=state.request_id
                ),
            )
            return
        flow.request.url = join_target_url(proxy.target.base_url, state.path, query)
        state.proxy_code = GRANTED
        flow.comment = f"request {state.request_id} · proxy {proxy.id} · {GRANTED}"

    @fail_closed
    def request(self, flow: http.HTTPFlow) -> None:
        """The body is in: merge `proxyAdditionalData` into JSON objects, then send."""
        state = state_of(flow)
        if flow.response is not None or state is None or state.proxy_code != GRANTED:
            return
        extra = state.proxy.additional_data
        if extra and flow.request.method in BODY_METHODS and not flow.request.stream:
            merge_json_body(flow.request, extra)
        state.mark("requestSent")
        state.sent_at = time.time()


def merge_json_body(request: http.Request, extra: dict) -> None:
    """`{**body, **extra}` for a JSON object body or an empty one; other bodies stay as they are."""
    if request.raw_content:
        try:
            body = json.loads(request.get_text(strict=True) or "")
        except ValueError:
            return
        if not isinstance(body, dict):
            return
    else:
        body = {}
        request.headers["content-type"] = "application/json"
    request.text = json.dumps({**body, **extra})
