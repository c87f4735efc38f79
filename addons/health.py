"""The data plane's health answer for load balancers: `GET /_portcullis/health` on the proxy port.

Answered from memory only (what the configuration source last saw of the store),
before route and authenticate: no store query, no request log entry, no
telemetry, never forwarded. The `/_portcullis/` prefix cannot collide with the
Proxy API (`/api/`) or the Async API (`/async/`); any other path or method under
it answers a JSON 404 or 405.

With Redis configured, its part says whether the last command (a request's or
the background ping's, every 2 s) reached it. Redis unreachable leaves the answer
200 with `"status": "degraded"`: every worker shares one Redis, so taking them all
out of the balancer would only replace their clear JSON 503s with the balancer's
own error page.
"""

from __future__ import annotations

import json
import time

from mitmproxy import ctx, exceptions, http

from addons.config import Config
from addons.counters import SharedCounters
from addons.failsafe import fail_closed
from addons.responses import DENIED, answer, answered, proxy_error
from addons.snapshot import EMPTY
from addons.state import FlowState, attach

PREFIX = "/_portcullis/"
HEALTH_PATH = PREFIX + "health"
METHODS = ("GET", "HEAD")
STALE_OPTION = "portcullis_health_stale_seconds"
DEFAULT_STALE_S = 30


def health_report(
    config: Config, now: float, stale_after_s: float, redis: dict | None = None
) -> tuple[int, dict]:
    """The status code and body of a health answer, from the configuration source's memory
    and (when configured) the shared counters' last word from Redis."""
    source = config.source
    snapshot = source.current if source is not None else EMPTY
    freshness = source.freshness if source is not None else None
    confirmed_at = freshness.confirmed_at if freshness is not None else None
    age = None if confirmed_at is None else round(now - confirmed_at, 3)
    body: dict = {
        "status": "ok",
        "configVersion": snapshot.version if snapshot is not EMPTY else None,
        "region": ctx.options.portcullis_region or None,
        "store": {
            "kind": source.store_kind if source is not None else None,
            "reachable": freshness is not None
            and confirmed_at is not None
            and freshness.failing_since is None,
            "lastSnapshotAgeSeconds": age,
        },
    }
    if redis is not None:
        body["redis"] = redis
    if snapshot is EMPTY:
        problem = ("CONFIG_NOT_LOADED", "The configuration has not been loaded from the store yet")
    elif age is None or age > stale_after_s:
        problem = (
            "STORE_UNREACHABLE",
            f"The store has not confirmed the configuration for more than {stale_after_s:g} s",
        )
    else:
        if redis is not None and not redis["reachable"]:
            body["status"] = "degraded"
        return 200, body
    body["status"] = "unavailable"
    body["error"] = {"code": problem[0], "message": problem[1]}
    return 503, body


def under_prefix(path: str) -> bool:
    return path.startswith(PREFIX) or path == PREFIX.rstrip("/")


class Health:
    """Answers the reserved `/_portcullis/` paths; must run before route."""

    def __init__(self, config: Config, counters: SharedCounters | None = None):
        self.config = config
        self.counters = counters

    def load(self, loader) -> None:
        loader.add_option(
            STALE_OPTION,
            int,
            DEFAULT_STALE_S,
            "Seconds without the store confirming the configuration (it is polled every "
            "0.2 s) after which GET /_portcullis/health answers 503.",
        )

    def configure(self, updated) -> None:
        if STALE_OPTION in updated and getattr(ctx.options, STALE_OPTION) < 1:
            raise exceptions.OptionsError(f"{STALE_OPTION} must be positive")

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        path = flow.request.path.partition("?")[0]
        if not under_prefix(path):
            return
        # A state with no proxy keeps the flow out of the request log and telemetry, and
        # lets `answer` drain a request body that is still coming.
        state = attach(flow, FlowState(snapshot=EMPTY))
        state.proxy_code = DENIED
        if path != HEALTH_PATH:
            message = f"Unknown path; the gateway's own paths are {HEALTH_PATH}"
            answer(flow, proxy_error(404, DENIED, "NOT_FOUND", message, None, state.request_id))
        elif flow.request.method not in METHODS:
            message = f"{HEALTH_PATH} answers {' and '.join(METHODS)} only"
            refusal = proxy_error(
                405, DENIED, "METHOD_NOT_ALLOWED", message, None, state.request_id
            )
            refusal.headers["Allow"] = ", ".join(METHODS)
            answer(flow, refusal)
        else:
            redis = self.counters.health() if self.counters is not None else None
            status, body = health_report(
                self.config, time.monotonic(), getattr(ctx.options, STALE_OPTION), redis
            )
            content = b"" if flow.request.method == "HEAD" else json.dumps(body).encode()
            headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
            answer(flow, http.Response.make(status, content, headers))
