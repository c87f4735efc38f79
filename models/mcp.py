"""MCP over Streamable HTTP: the JSON-RPC calls a request to an MCP proxy carries (issue 18)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class McpCall:
    """One JSON-RPC message of a request: its method and, for `tools/call`, the tool's name."""

    method: str  # e.g. "tools/call", "tools/list", "initialize"
    tool: str | None = None  # `params.name` of a tools/call; None otherwise
    id: Any = None  # the JSON-RPC id; None for a notification
    document: Any = None  # the message itself (a JSON object), for body checks
