"""MCP-aware policy end to end (issue 18): the official `mcp` SDK's Streamable HTTP server
(tests/mcp_support.py) behind a real mitmdump, and the SDK's own client through the gateway.

A credential scoped to `search` (one deny rule on its proxy-credential scope: tools/call of
any tool but `search`) sees only `search` in tools/list, calls it, and gets a JSON-RPC error
the client raises as McpError for any other tool; batches are decided element by element.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from mcp.shared.exceptions import McpError

from addons.mcp_policy import ToolsListFilter
from addons.response_watch import WHOLE, ResponseHead, run_watches, watches_for
from models.mcp import MAX_BATCH_CALLS, McpCall
from models.rule_engine import RequestFacts, build_scope
from models.sse import SseParser
from tests.mcp_support import TOOLS, McpServer, with_session
from tests.proxy_support import CALLER_KEY, Setup, call, logged
from tests.support import Api
from tests.test_body_rules import NOT_STRICT_JSON

AUTH = {"X-API-Key": CALLER_KEY}
DEADLINE_S = 10
SCOPED = {
    "effect": "deny",
    "mcpMethods": ["tools/call"],
    "mcpTools": ["search"],
    "mcpToolsPresence": "absent",
}


@dataclass(frozen=True)
class Target:
    base_url: str  # what Setup reads of an upstream


@pytest.fixture(scope="module", params=["sse", "json"])
def mcp_server(request):
    """The MCP server answering POSTs with an event stream (the SDK's default), or JSON."""
    with McpServer(json_response=request.param == "json") as server:
        yield server


@pytest.fixture(scope="module")
def owner_api(admin_server, owner) -> Api:
    return Api(admin_server.base_url, owner.token)


def jsonrpc(method: str, id_=1, **params) -> dict:
    message = {"jsonrpc": "2.0", "method": method, "params": params}
    return message if id_ is None else {**message, "id": id_}


def scoped_proxy(api: Api, server: McpServer, gateway) -> tuple[Setup, dict]:
    """An MCP proxy to `server` whose caller credential may call `search` only, applied."""
    made = Setup(api, Target(server.base_url), proxyMcp=True)
    rule = made.rule(f"credentials/{made.caller['sKey']}", SCOPED)
    probe = jsonrpc("tools/call", name="delete_repo", arguments={"name": "probe"})
    deadline = time.monotonic() + DEADLINE_S
    while True:
        answer = call(gateway, "POST", f"/api/{made.id}/mcp", headers=AUTH, json=probe)
        refused = answer.headers.get("content-type", "").startswith("application/json") and (
            answer.json().get("error", {}).get("code") == -32001
        )
        if refused or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling a real process for the snapshot, bounded by the deadline
    assert refused, answer.text
    return made, rule


def test_a_credential_scoped_to_search_sees_and_calls_only_search(owner_api, mcp_server, gateway):
    made, rule = scoped_proxy(owner_api, mcp_server, gateway)
    url = f"{gateway.base_url}/api/{made.id}/mcp"
    before = list(mcp_server.calls)

    async def use(session):
        listed = await session.list_tools()
        found = await session.call_tool("search", {"query": "gateways"})
        refused = {}
        for tool in ("delete_repo", "read_file"):
            try:
                await session.call_tool(tool, {"name": "x", "path": "x"})
            except McpError as error:
                refused[tool] = error.error
        return [tool.name for tool in listed.tools], found, refused

    names, found, refused = with_session(url, AUTH, use)
    assert names == ["search"]
    assert not found.isError and found.content[0].text == "found: gateways"
    assert set(refused) == {"delete_repo", "read_file"}
    for error in refused.values():
        assert error.code == -32001
        assert error.message == f"Denied by the proxyCredential scope: rule {rule['sKey']}"
        assert error.data["scope"] == "proxyCredential"
        assert error.data["ruleId"] == rule["sKey"]
    assert mcp_server.calls[len(before) :] == [("search", {"query": "gateways"})]
    entry = logged(owner_api, made, refused["delete_repo"].data["requestId"])
    assert entry["proxyData"]["mcp"] == {"method": "tools/call", "tool": "delete_repo"}
    assert entry["proxyData"]["proxyCode"] == "proxy-access-denied"


def test_batches_and_odd_calls_are_decided_element_by_element(owner_api, mcp_server, gateway):
    made, rule = scoped_proxy(owner_api, mcp_server, gateway)
    path = f"/api/{made.id}/mcp"
    before = list(mcp_server.calls)
    denied = {
        "code": -32001,
        "message": f"Denied by the proxyCredential scope: rule {rule['sKey']}",
    }
    batch = [
        jsonrpc("tools/call", 1, name="search", arguments={"query": "a"}),
        jsonrpc("tools/call", "two", name="delete_repo", arguments={"name": "r"}),
        jsonrpc("tools/list", 3),
        jsonrpc("tools/call", None, name="read_file"),  # a notification: id null
    ]
    answer = call(gateway, "POST", path, headers=AUTH, json=batch)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["requestrocket-proxy-code"] == "proxy-access-denied"
    errors = answer.json()
    assert [e["id"] for e in errors] == [1, "two", 3, None]
    assert [e["error"]["code"] for e in errors] == [-32002, -32001, -32002, -32001]
    for refused in (errors[1], errors[3]):
        assert {k: refused["error"][k] for k in ("code", "message")} == denied
        assert refused["error"]["data"]["ruleId"] == rule["sKey"]
    entry = logged(owner_api, made, answer.headers["portcullis-request-id"])
    assert entry["proxyData"]["mcp"] == {
        "batch": [
            {"method": "tools/call", "tool": "search"},
            {"method": "tools/call", "tool": "delete_repo"},
            {"method": "tools/list", "tool": None},
            {"method": "tools/call", "tool": "read_file"},
        ]
    }
    # Single calls the scope must not let through, however they are spelled.
    odd = [
        jsonrpc("tools/call", 7),  # no tool name: none of the allowed tools
        {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": ["search"]}},
        {"id": 9, "method": "tools/call", "params": {"name": "delete_repo"}},  # no jsonrpc
        [{"jsonrpc": "2.0", "id": 10, "result": {}}, jsonrpc("tools/call", 11, name="x")],
    ]
    for body in odd:
        answer = call(gateway, "POST", path, headers=AUTH, json=body)
        assert answer.status_code == 200, (body, answer.text)
        refused = answer.json()
        refused = refused[0] if isinstance(refused, list) else refused
        assert refused["error"]["code"] == -32001, (body, refused)
    # Calls a lenient server would parse (or read differently) that the policy cannot check.
    unreadable = {
        **NOT_STRICT_JSON,
        "repeated tool name": b'{"jsonrpc": "2.0", "id": 12, "method": "tools/call", '
        b'"params": {"name": "delete_repo", "name": "search"}}',
        "lone surrogate in arguments": b'{"jsonrpc": "2.0", "id": 13, "method": "tools/call", '
        b'"params": {"name": "delete_repo", "arguments": {"x": "\\ud800"}}}',
    }
    for name, raw in unreadable.items():
        headers = {**AUTH, "Content-Type": "application/json"}
        answer = call(gateway, "POST", path, headers=headers, data=raw)
        assert answer.status_code == 400, (name, answer.text)
        assert answer.json()["error"]["code"] == "BODY_NOT_INSPECTABLE", name
    # A batch is decided call by call on the event loop: at most MAX_BATCH_CALLS of them.
    allowed = [jsonrpc("tools/call", n, name="search") for n in range(MAX_BATCH_CALLS + 1)]
    answer = call(gateway, "POST", path, headers=AUTH, json=allowed)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "MCP_BATCH_TOO_LARGE"
    assert mcp_server.calls[len(before) :] == [], "a refused call reached the MCP server"


def test_a_streamed_tools_list_is_cut_event_by_event_whatever_the_chunking():
    """The watch the forward stage runs over a streamed `tools/list` answer (no process:
    the same ToolsListFilter the data plane registers, over every chunk size)."""
    rule = SimpleNamespace(
        id="rule_only_search", effect="deny", priority=0, methods=[], path_pattern=None,
        path_presence="present", header_checks=[], query_checks=[], regex_flags="",
        mcp_methods=["tools/call"], mcp_tools=["search"], mcp_tools_presence="absent",
    )  # fmt: skip
    scopes = [build_scope("proxyCredential", "allow", [rule])]
    calls = (McpCall("tools/list", None, 3, jsonrpc("tools/list", 3)),)
    facts = RequestFacts("POST", "/mcp", (), ())
    listed = {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {"tools": [{"name": name, "inputSchema": {}} for name in (*TOOLS, 5)]},
    }
    other = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n'
    body = b": keep-alive\n\n" + other + f"event: message\ndata: {json.dumps(listed)}\n\n".encode()
    head = ResponseHead("POST", 200, ((b"content-type", b"text/event-stream"),))
    for size in (1, 7, 64, len(body)):
        watcher = ToolsListFilter(scopes, facts, calls)
        whole, watches = watches_for([watcher], head)
        assert not whole and len(watches) == 1
        out = b"".join(
            run_watches(watches, body[at : at + size]) for at in range(0, len(body), size)
        ) + run_watches(watches, b"", final=True)
        assert out.startswith(b": keep-alive\n\n" + other), size
        events = SseParser().feed(out)
        assert [json.loads(e.data).get("id") for e in events] == [None, 3]
        assert [t["name"] for t in json.loads(events[1].data)["result"]["tools"]] == ["search"]
    json_head = ResponseHead("POST", 200, ((b"content-type", b"application/json"),))
    encoded = ResponseHead("POST", 200, (*head.headers, (b"content-encoding", b"gzip")))
    refused = ResponseHead("POST", 404, json_head.headers)
    needs = [ToolsListFilter(scopes, facts, calls).watch(h) for h in (json_head, encoded, refused)]
    assert needs == [WHOLE, WHOLE, None]
