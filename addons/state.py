"""Per-flow state shared by the pipeline stages.

Kept beside the flow, not in `flow.metadata`: it holds the configuration
(including opened secrets), which must never be saved to a flow file.
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from mitmproxy import http

from addons.injection import Injection
from addons.response_watch import ResponseWatcher
from addons.snapshot import ProxyView, Snapshot
from addons.upstream import UpstreamRequest
from models.mcp import McpCall
from models.rule_engine import BodyFacts, Decision

if TYPE_CHECKING:
    from addons.egress import EgressRoute
    from addons.ratelimit_headers import LimitCheck

# The `validationData` flags of a request log entry (seed 001), all false until proven.
VALIDATION_FLAGS = (
    "proxyExists",
    "proxyActive",
    "proxyAuthenticated",
    "proxyCredentialExists",
    "proxyCredentialActive",
    "proxyCredentialRelationship",
    "proxyCredentialScopeValid",
    "proxyScopeValid",
    "targetExists",
    "targetRelationship",
    "targetScopeValid",
    "targetCredentialExists",
    "targetCredentialActive",
    "targetCredentialRelationship",
    "targetCredentialScopeValid",
    "requestValid",
    "requestSent",
    "responseReceived",
    "systemError",
    "requestConfigError",
)


class RequestIds:
    """Random UUID v4 strings, from OS randomness fetched in blocks (one syscall per 256)."""

    BLOCK = 16 * 256

    def __init__(self):
        self._block, self._at = b"", 0

    def __call__(self) -> str:
        if self._at + 16 > len(self._block):
            self._block, self._at = os.urandom(self.BLOCK), 0
        digits = self._block[self._at : self._at + 16].hex()
        self._at += 16
        variant = "89ab"[int(digits[16], 16) & 3]
        return (
            f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"
        )


new_request_id = RequestIds()


def decode_fields(fields) -> list[tuple[str, str]]:
    """Raw header fields as text, the way mitmproxy decodes them."""
    return [
        (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        for name, value in fields
    ]


@dataclass
class FlowState:
    snapshot: Snapshot
    request_id: str = field(default_factory=new_request_id)
    received_at: float = field(default_factory=time.time)
    method: str = "GET"
    candidates: tuple[ProxyView, ...] = ()
    proxy: ProxyView | None = None
    path: str = "/"  # canonical path below the proxy, as forwarded and as rules see it
    query: str = ""  # raw query string as received
    decision: Decision | None = None
    limit_check: LimitCheck | None = None  # the limit stage's outcome: RateLimit headers
    proxy_code: str | None = None
    is_async: bool = False  # an Async API request: queued, not sent
    # The caller's answer is `final_response`, swapped in by the respond stage (it may
    # come back from the stream bridge): set for granted flows and for refused ones
    # whose body is drained.
    routed: bool = False
    refused: bool = False  # answered by a check while its body was still to come
    injection: Injection | None = None  # what the forward stage put in, to redact
    upstream: UpstreamRequest | None = None  # what goes to the target (Proxy API)
    # An Async API request as it is stored: headers and query without the caller's credential
    stored_request: tuple[tuple[tuple[str, str], ...], str] | None = None
    attempt: tuple[str, int] | None = None  # an async delivery attempt: (job id, number)
    # The answer the gateway settled on after sending; mitmproxy's own upstream
    # response (from the stream bridge) is always replaced by it.
    final_response: http.Response | None = None
    sent_at: float | None = None
    target_answered_at: float | None = None
    upstream_status: int | None = None
    egress: EgressRoute | None = None  # the proxy the (last) attempt went through; None: direct
    # Why the target leg failed, when it did (addons/outbound.py `failure_response`):
    # timeout, unreachable, broken_answer, too_large or egress.
    upstream_failure: str | None = None
    finished_at: float | None = None  # the caller's answer settled (respond stage)
    # The caller's headers as received, raw: decoded only where needed, off the event loop.
    caller_fields: tuple[tuple[bytes, bytes], ...] = ()
    validation: dict[str, bool] = field(
        default_factory=lambda: dict.fromkeys(VALIDATION_FLAGS, False)
    )
    # Issue 18. The proxy's policy reads the body: the checks after authenticate run in
    # `request`, once it is in (addons/body_first.py), and see it parsed once here.
    body_first: bool = False
    body: BodyFacts | None = None
    mcp_calls: tuple[McpCall, ...] = ()  # the JSON-RPC messages of an MCP proxy's request
    mcp_batch: bool = False  # they came as a JSON-RPC batch (an array)
    # Stages that want to see the target's answer (addons/response_watch.py).
    watchers: list[ResponseWatcher] = field(default_factory=list)
    streamed: bool = False  # the answer went to the caller as it arrived
    response_bytes: int | None = None  # the target's body bytes passed on, once complete
    stream_outcome: str | None = None  # a streamed answer broken off: the proxy code saying why
    response_preview: bytes | None = None  # a streamed answer's first bytes, for the request log

    @property
    def caller_headers(self) -> list[tuple[str, str]]:
        return decode_fields(self.caller_fields)

    @property
    def caller_query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True, errors="surrogateescape")

    def mark(self, *flags: str) -> None:
        for flag in flags:
            self.validation[flag] = True

    def finish(self) -> None:
        """Stamp the time the caller's answer was settled (once)."""
        if self.finished_at is None:
            self.finished_at = time.time()

    @property
    def proxy_seconds(self) -> float | None:
        """The proxy leg: from receiving the request to settling the caller's answer."""
        return None if self.finished_at is None else self.finished_at - self.received_at

    @property
    def target_seconds(self) -> float | None:
        """The target leg: from sending to the target to its complete answer."""
        if self.sent_at is None or self.target_answered_at is None:
            return None
        return self.target_answered_at - self.sent_at


_states: weakref.WeakKeyDictionary[http.HTTPFlow, FlowState] = weakref.WeakKeyDictionary()


def attach(flow: http.HTTPFlow, state: FlowState) -> FlowState:
    _states[flow] = state
    return state


def state_of(flow: http.HTTPFlow) -> FlowState | None:
    return _states.get(flow)
