"""Stage 4, limit: each proxy's requests per minute and per day, before anything is forwarded.

Both windows are checked and consumed at once through the shared counters
(addons/counters.py): in memory, exact within this process, or in Redis, exact
across every process sharing it. Over a limit: 429 `RATE_LIMITED` with
`Retry-After` (seconds until the refusing window resets). Counters unavailable
(Redis down or slow): 503 `LIMITS_UNAVAILABLE`, never forwarded. Proxy API and
Async API alike (an async request is counted when it is accepted, before it is
queued). A refused request is still logged, like any other refusal.

A proxy's stored limits are capped by the platform maxima this process was started
with (`PORTCULLIS_MAX_REQUESTS_PER_MINUTE` / `_PER_DAY`), so lowering a maximum
applies at once to proxies saved under a higher one. What was decided is kept on
the flow's state (`limit_check`); the respond stage turns it into the `RateLimit`
headers of every answer (addons/ratelimit_headers.py).
"""

from __future__ import annotations

import time

from mitmproxy import http

from addons.counters import CountersUnavailable, Limit, Outcome, SharedCounters, Window
from addons.events import Events
from addons.failsafe import fail_closed
from addons.ratelimit_headers import LimitCheck
from addons.responses import DENIED, GATEWAY_ERROR, answer, answered, proxy_error
from addons.snapshot import ProxyView
from addons.state import state_of
from models.settings import Settings


def proxy_limits(proxy: ProxyView, maxima: tuple[int, int] | None = None) -> tuple[Limit, ...]:
    """The windows a proxy's request counts against, capped by (per minute, per day) maxima."""
    name = f"proxy:{proxy.id}:requests"
    per_minute, per_day = proxy.max_requests_per_minute, proxy.max_requests_per_day
    if maxima is not None:
        per_minute, per_day = min(per_minute, maxima[0]), min(per_day, maxima[1])
    return (
        Limit(name, Window.MINUTE, per_minute),
        Limit(name, Window.DAY, per_day),
    )


def rate_limited(outcome: Outcome, now: float, request_id: str) -> http.Response:
    """429 naming the window that refused, with `Retry-After` until it resets."""
    refused = outcome.refused
    retry_after = refused.resets_in(now)
    window = refused.limit.window.value
    message = (
        f"Rate limit exceeded: {refused.limit.limit} requests per {window} for this proxy; "
        f"retry in {retry_after} s"
    )
    details = {"window": window, "limit": refused.limit.limit, "retryAfterSeconds": retry_after}
    response = proxy_error(429, DENIED, "RATE_LIMITED", message, details, request_id)
    response.headers["Retry-After"] = str(retry_after)
    return response


def limits_unavailable(request_id: str) -> http.Response:
    message = "Rate limits cannot be checked right now (counters unavailable); nothing was sent"
    return proxy_error(503, GATEWAY_ERROR, "LIMITS_UNAVAILABLE", message, None, request_id)


class RateLimit:
    """Counts every routed, authenticated, authorized request against its proxy's limits."""

    def __init__(self, shared: SharedCounters, events: Events | None = None):
        self.shared = shared
        self.events = events  # ratelimit.reached, once per proxy and window (addons/events.py)
        self.maxima: tuple[int, int] | None = None

    def running(self) -> None:
        settings = Settings.from_env()
        self.maxima = (settings.max_requests_per_minute, settings.max_requests_per_day)

    @fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        state = state_of(flow)
        now = self.shared.clock()
        try:
            outcome = await self.shared.counters.consume(
                proxy_limits(state.proxy, self.maxima), now=now
            )
        except CountersUnavailable:
            state.mark("systemError")
            state.proxy_code = GATEWAY_ERROR
            answer(flow, limits_unavailable(state.request_id))
            return
        state.limit_check = LimitCheck(outcome, now, time.time())
        if not outcome.allowed:
            state.proxy_code = DENIED
            answer(flow, rate_limited(outcome, now, state.request_id))
            if self.events is not None:
                window = outcome.refused.limit.window
                proxy = state.proxy
                start = window.bounds(now)[0]
                self.events.rate_limit_reached(proxy.client_id, proxy.id, window.value, start, None)
