"""MCP policy on the wire: JSON-RPC refusals, and `tools/list` answers cut to what may be called.

Refusals (`refused_calls`): an MCP client reads JSON-RPC, not the gateway's HTTP
403, so a request with a denied call is answered HTTP 200, `application/json`,
one JSON-RPC error per call, with its id (`null` for a notification):

- a denied call: code -32001 (`DENIED_CODE`), the denial's message ("Denied by
  the proxyCredential scope: rule ..."), `data` {scope, ruleId, requestId};
- in a batch, the calls that were allowed: code -32002 (`NOT_SENT_CODE`), "not
  sent: another call in this batch was denied" (nothing of the batch is sent).

The proxy-code headers say `proxy-access-denied`; nothing reaches the target.

`tools/list` filtering (`ToolsListFilter`, a response watcher registered by the
authorize stage when a request lists tools): each tool of `result.tools` stays
only if a `tools/call` of it would be allowed by the four scopes for the same
request (same headers and path; body checks see the hypothetical call's message
`{"jsonrpc": "2.0", "method": "tools/call", "params": {"name": ...}}`). A tool
without a string name is dropped. A JSON answer is buffered whole and filtered
in this stage's `response` hook (`McpPolicy`); an event stream (`text/event-stream`)
is rewritten event by event as it passes (models/sse.py `SseRewriter`), so the
stream is never held back. A JSON answer that cannot be read is not passed on
(502 `RESPONSE_NOT_JSON`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from mitmproxy import http

from addons.filters import DROPPED_WHEN_FILTERED, drop_headers
from addons.response_watch import WHOLE, ResponseHead, Watch, Whole
from addons.responses import (
    DENIED,
    GATEWAY_ERROR,
    GRANTED,
    PROXY_CODE,
    PROXY_MESSAGE,
    REQUEST_ID,
    proxy_error,
    replace_response,
)
from addons.state import FlowState, state_of
from models.json_limits import loads
from models.mcp import TOOLS_CALL, TOOLS_LIST, McpCall
from models.rule_engine import Decision, RequestFacts, Scope, authorize
from models.sse import SseEvent, SseRewriter

log = logging.getLogger("portcullis.mcp")

DENIED_CODE = -32001
NOT_SENT_CODE = -32002
NOT_SENT_MESSAGE = "Not sent: another call in this batch was denied"


def refused_calls(
    state: FlowState, decisions: Sequence[Decision], message: Callable[[Decision], str]
) -> http.Response:
    """The JSON-RPC answer refusing `state.mcp_calls` (one decision per call, one denied)."""
    errors = []
    for call, decision in zip(state.mcp_calls, decisions, strict=True):
        if decision.allowed:
            error = {"code": NOT_SENT_CODE, "message": NOT_SENT_MESSAGE}
        else:
            data = {"scope": decision.scope, "ruleId": decision.rule_id}
            data["requestId"] = state.request_id
            error = {"code": DENIED_CODE, "message": message(decision), "data": data}
        errors.append({"jsonrpc": "2.0", "id": call.id, "error": error})
    body = errors if state.mcp_batch else errors[0]
    first = message(next(d for d in decisions if not d.allowed))
    headers = {
        "Content-Type": "application/json",
        PROXY_CODE: DENIED,
        PROXY_MESSAGE: first,
        REQUEST_ID: state.request_id,
    }
    return http.Response.make(200, json.dumps(body).encode(), headers)


class ToolsListFilter:
    """A response watcher cutting `tools/list` results to the tools the caller may call."""

    def __init__(self, scopes: Sequence[Scope], facts: RequestFacts, calls: Sequence[McpCall]):
        self.scopes = scopes
        self.facts = facts
        self.ids = [call.id for call in calls if call.method == TOOLS_LIST]
        self._allowed: dict[str, bool] = {}
        self.asked = False  # the forward stage asked what this answer needs
        self.whole = False  # ... and it was buffered whole for the `response` hook

    def allows(self, name: str) -> bool:
        """Whether a `tools/call` of `name` would be allowed for this request."""
        if name not in self._allowed:
            message = {"jsonrpc": "2.0", "method": TOOLS_CALL, "params": {"name": name}}
            call = McpCall(TOOLS_CALL, name, None, message)
            self._allowed[name] = authorize(self.scopes, self.facts.for_call(call)).allowed
        return self._allowed[name]

    def watch(self, head: ResponseHead) -> Watch | Whole | None:
        self.asked = True
        if head.method == "HEAD" or not 200 <= head.status < 300:
            return None
        if head.is_event_stream and not head.encoded:
            return SseRewriter(self.rewrite_event)
        self.whole = True
        return WHOLE

    def filter_document(self, document: Any) -> Any:
        """A JSON-RPC message (or batch of them) with each tools/list result cut."""
        if isinstance(document, list):
            return [self.filter_document(message) for message in document]
        if not isinstance(document, dict) or document.get("id") not in self.ids:
            return document
        result = document.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return document
        kept = [
            tool
            for tool in result["tools"]
            if isinstance(tool, dict)
            and isinstance(tool.get("name"), str)
            and self.allows(tool["name"])
        ]
        return {**document, "result": {**result, "tools": kept}}

    def rewrite_event(self, event: SseEvent) -> SseEvent | None:
        """An event-stream event with its JSON-RPC tools/list result cut."""
        try:
            document = loads(event.data.encode())
        except ValueError:
            return event  # not JSON: not a JSON-RPC message
        filtered = self.filter_document(document)
        if filtered == document:
            return event
        return SseEvent(event.event, json.dumps(filtered, ensure_ascii=False), event.id)

    def filter_body(self, body: bytes, event_stream: bool) -> bytes | None:
        """A whole answer's body filtered; None if it cannot be read."""
        if event_stream:
            rewriter = SseRewriter(self.rewrite_event)
            return rewriter.feed(body) + rewriter.end()
        try:
            document = loads(body)
        except ValueError:
            return None
        filtered = self.filter_document(document)
        return json.dumps(filtered, ensure_ascii=False, separators=(",", ":")).encode()


def tools_list_filter(state: FlowState, facts: RequestFacts) -> ToolsListFilter | None:
    """The watcher for a request listing tools (None if it lists none)."""
    if not any(call.method == TOOLS_LIST for call in state.mcp_calls):
        return None
    return ToolsListFilter(state.proxy.scopes, facts, state.mcp_calls)


class McpPolicy:
    """Filters a buffered `tools/list` answer in `response` (between forward and respond)."""

    async def response(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None or state.proxy is None or state.is_async or not state.mcp_calls:
            return
        watcher = next((w for w in state.watchers if isinstance(w, ToolsListFilter)), None)
        response = state.final_response
        if (
            watcher is None
            or response is None
            or state.proxy_code != GRANTED
            or state.upstream_status is None
            or not response.raw_content
            or (watcher.asked and not watcher.whole)  # rewritten as it streamed
            or not 200 <= response.status_code < 300
        ):
            return
        try:
            content = response.get_content(strict=True) or b""
            media = (response.headers.get("content-type") or "").split(";")[0].strip().lower()
            filtered = watcher.filter_body(content, media == "text/event-stream")
        except Exception:
            log.exception("filtering a tools/list answer failed for proxy %s", state.proxy.id)
            filtered = None
        if filtered is None:
            state.proxy_code = GATEWAY_ERROR
            replace_response(response, proxy_error(
                502, GATEWAY_ERROR, "RESPONSE_NOT_JSON",
                "The MCP server's tools/list answer could not be read, so it is not passed on "
                "unfiltered", request_id=state.request_id,
            ))  # fmt: skip
            return
        drop_headers(response.headers, DROPPED_WHEN_FILTERED)
        response.raw_content = filtered
        response.headers["content-length"] = str(len(filtered))
