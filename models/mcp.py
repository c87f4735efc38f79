"""MCP over Streamable HTTP: the JSON-RPC calls a request to an MCP proxy carries (issue 18).

One parser (`parse_calls`) for the data plane and the explainer: a call is an
object with a string `method` (JSON-RPC 2.0 requests and notifications; one
without `"jsonrpc": "2.0"` is decided too, so a lenient server never runs a call
the policy did not see); a batch is a non-empty array holding at least one call.
Responses (no `method`, e.g. a client's answer to a server's request) are not calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.request_body import BodyRefusal

# The most calls one batch may hold: each is decided on its own, on the event loop.
MAX_BATCH_CALLS = 100
TOOLS_CALL = "tools/call"
TOOLS_LIST = "tools/list"


@dataclass(frozen=True)
class McpCall:
    """One JSON-RPC message of a request: its method and, for `tools/call`, the tool's name."""

    method: str  # e.g. "tools/call", "tools/list", "initialize"
    tool: str | None = None  # `params.name` of a tools/call; None otherwise
    id: Any = None  # the JSON-RPC id; None for a notification
    document: Any = None  # the message itself (a JSON object), for body checks

    @property
    def is_notification(self) -> bool:
        return self.document is not None and "id" not in self.document


def _call(message: Any) -> McpCall | None:
    """`message` as a call, or None if it is not a request or notification (no `method`)."""
    if not isinstance(message, dict):
        return None
    method = message.get("method")
    if not isinstance(method, str):
        return None
    tool = None
    if method == TOOLS_CALL:
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        tool = name if isinstance(name, str) else None
    return McpCall(method, tool, message.get("id"), message)


def parse_calls(document: Any) -> tuple[tuple[McpCall, ...], bool] | None:
    """(the calls, whether they came as a batch) of a parsed JSON body, or None if it holds none.

    In a batch every element with a `method` is a call (each is decided); the
    other elements (responses) are not. An object without `method` is not a call.
    """
    if isinstance(document, list):
        calls = tuple(call for call in map(_call, document) if call is not None)
        return (calls, True) if calls else None
    call = _call(document)
    return None if call is None else ((call,), False)


def batch_refusal(calls: tuple[McpCall, ...]) -> BodyRefusal | None:
    """400 `MCP_BATCH_TOO_LARGE` for a batch of more than `MAX_BATCH_CALLS` calls."""
    if len(calls) <= MAX_BATCH_CALLS:
        return None
    from models.request_body import BodyRefusal  # it imports the rule engine, which imports us

    return BodyRefusal(
        400,
        "MCP_BATCH_TOO_LARGE",
        f"A JSON-RPC batch may hold at most {MAX_BATCH_CALLS} calls; this one holds "
        f"{len(calls)}. Send them in smaller batches",
        {"limit": MAX_BATCH_CALLS, "calls": len(calls)},
    )
