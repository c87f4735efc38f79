"""Meters reading event streams (issue 18) on a real data plane: a real admin, a real
mitmdump, real targets on 127.0.0.1 (a chunked SSE target here, the recording upstream),
on both stores.

A `response_value` meter reads its path in each SSE event's data as the event passes
(nothing held back; the caller gets the target's bytes unchanged) and the count applies
to the meter's limits as for JSON answers (limit mode "reached", the default: a window
refuses once its count has reached the limit). MCP proxies: predicates on the JSON-RPC
method and tool.
"""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import requests

from models.meter_engine import compile_extraction
from models.sse import SseEvent
from tests.async_support import finished, submit, wait_for_job
from tests.mcp_support import McpServer, with_session
from tests.proxy_support import CALLER_KEY, Setup, call
from tests.support import create
from tests.test_meters import arrived, metered_proxy, synced

AUTH = {"X-API-Key": CALLER_KEY}
GATE_MAX_S = 10


def openai_stream(total_tokens: int) -> list[bytes]:
    """An OpenAI-style streamed completion, one event per chunk: `usage: null` on every
    chunk but the last, which carries the usage; then `data: [DONE]`."""
    chunk = {"object": "chat.completion.chunk", "choices": [{"delta": {"content": "Hi"}}]}
    return [
        b"data: " + json.dumps({**chunk, "usage": None}).encode() + b"\n\n",
        b"data: " + json.dumps({**chunk, "usage": None}).encode() + b"\n\n",
        b"data: "
        + json.dumps({**chunk, "choices": [], "usage": {"total_tokens": total_tokens}}).encode()
        + b"\n\n",
        b"data: [DONE]\n\n",
    ]


def anthropic_stream(output_tokens: int, line_end: bytes = b"\n") -> bytes:
    """An Anthropic-style stream; another event also carries `usage.output_tokens`, which a
    meter reading only `message_delta` must not count."""
    events = [
        ("message_start", {"type": "message_start", "message": {"usage": {"output_tokens": 1}}}),
        ("content_block_delta", {"type": "content_block_delta", "usage": {"output_tokens": 999}}),
        ("message_delta", {"type": "message_delta", "usage": {"output_tokens": output_tokens}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    n = line_end
    return b"".join(
        b"event: " + name.encode() + n + b"data: " + json.dumps(data).encode() + n + n
        for name, data in events
    )


class _SseHandler(BaseHTTPRequestHandler):
    """POST any path: the request body is a JSON list of strings, sent back as a
    `text/event-stream`, each string in its own HTTP chunk (flushed). With `hold` in the
    query the rest waits after the first chunk until the test opens `gate(marker)`."""

    protocol_version = "HTTP/1.1"
    server: _SseServer

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = parse_qs(self.path.partition("?")[2], keep_blank_values=True)
        marker = query["m"][0]
        with self.server.lock:
            self.server.seen[marker] += 1
        chunks = [part.encode() for part in json.loads(body)]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for index, chunk in enumerate(chunks):
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                if index == 0 and "hold" in query:
                    self.server.held[marker] = self.server.gate(marker).wait(GATE_MAX_S)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the gateway cut the stream


class _SseServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SseHandler)
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()  # requests per `m` (marker) query parameter
        self._gates: dict[str, threading.Event] = {}
        self.held: dict[str, bool] = {}  # per held answer's marker: the gate opened in time

    def gate(self, marker: str) -> threading.Event:
        with self.lock:
            return self._gates.setdefault(marker, threading.Event())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def sse_target():
    server = _SseServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stream_call(gateway, made: Setup, chunks: list[bytes], marker: str, **kwargs):
    body = json.dumps([c.decode() for c in chunks])
    path = f"/api/{made.id}/chat?m={marker}"
    return call(gateway, "POST", path, headers=AUTH, data=body, **kwargs)


def test_an_openai_stream_is_counted_and_limited_before_the_target(
    api, sse_target, gateway, admin_server
):
    tokens = {
        "meterName": "Streamed tokens",
        "meterType": "response_value",
        "extraction": {"location": "body", "path": "usage.total_tokens"},
        "limits": {"day": 800},  # limit mode "reached" (the default)
    }
    made, _ = metered_proxy(api, sse_target, gateway, admin_server, tokens)
    marker = uuid.uuid4().hex
    chunks = openai_stream(420)
    # The meter holds nothing back: the first event reaches the caller while the target
    # still waits to send the rest (it waits for the test, which waits for that event).
    with stream_call(gateway, made, chunks, f"{marker}&hold", stream=True) as first:
        assert first.status_code == 200, first.text
        assert first.headers["content-type"].startswith("text/event-stream")
        received = b""
        pieces = first.iter_content(chunk_size=None)
        while b"\n\n" not in received:
            received += next(pieces)
        sse_target.gate(marker).set()
        received += b"".join(pieces)
    assert sse_target.held[marker], "the first event was held back until the target finished"
    assert received == b"".join(chunks), "the meter changed the stream"
    answers = [stream_call(gateway, made, chunks, marker) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429], [a.text for a in answers]
    refused = answers[1].json()["error"]
    assert refused["code"] == "METER_LIMIT_EXCEEDED"
    assert refused["details"]["used"] == 840 and refused["details"]["limit"] == 800
    assert sse_target.seen[marker] == 2, "the refused request reached the target"


def test_a_stream_cut_for_its_size_still_counts_the_events_that_passed(
    api, sse_target, gateway, admin_server
):
    made = Setup(api, sse_target, proxyMaxResponseBytes=4096)
    create(
        api,
        f"{made.base}/proxies/{made.id}/meters",
        {
            "meterName": "tokens",
            "meterType": "response_value",
            "extraction": {"location": "body", "path": "usage.total_tokens"},
            "limits": {"day": 400},
        },
        "meters",
    )
    synced(admin_server, gateway)
    marker = uuid.uuid4().hex
    usage_first = [openai_stream(420)[2], b"data: " + b"x" * 64 * 1024 + b"\n\n"]
    with stream_call(gateway, made, usage_first, f"{marker}&hold", stream=True) as cut:
        assert cut.status_code == 200
        pieces = cut.iter_content(chunk_size=None)
        assert next(pieces).startswith(b"data: "), "the first event did not come through"
        sse_target.gate(marker).set()
        with pytest.raises(requests.RequestException):
            b"".join(pieces)  # broken off, never a clean end
    refused = stream_call(gateway, made, openai_stream(1), marker)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["details"]["used"] == 420
    assert sse_target.seen[marker] == 1


def test_an_anthropic_stream_counts_only_the_named_event(api, upstream, gateway, admin_server):
    """The event name picks the events read (another event carrying the same field is not
    counted); an SSE answer that arrives whole (with a Content-Length, from the recording
    upstream), a gzip-encoded one (read whole, decoded) and an async delivery's stored
    answer are read the same way."""
    named = {
        "meterName": "output tokens",
        "meterType": "response_value",
        "extraction": {"location": "body", "path": "usage.output_tokens", "event": "message_delta"},
        "limits": {"day": 67},
    }
    made, [meter] = metered_proxy(api, upstream, gateway, admin_server, named)
    accepted = submit(
        gateway, made, "/mirror/x?content_type=text/event-stream", data=anthropic_stream(7)
    )
    assert accepted.status_code == 202, accepted.text
    wait_for_job(api, made, accepted.json()["requestId"], finished)  # counted: 7

    marker = uuid.uuid4().hex
    path = f"/api/{made.id}/mirror/x?content_type=text/event-stream&m={marker}"
    sent = ((b"\n", ""), (b"\r\n", ""), (b"\r", ""), (b"\n", "&encoding=gzip"))
    for line_end, encoding in sent:  # 15 each: 67 in all (within the estimate too)
        body = anthropic_stream(15, line_end)
        answer = call(gateway, "POST", path + encoding, headers=AUTH, data=body)
        assert answer.status_code == 200, answer.text
        assert answer.content == body
    refused = call(gateway, "POST", path, headers=AUTH, data=anthropic_stream(15))
    assert refused.status_code == 429, refused.text
    details = refused.json()["error"]["details"]
    assert (details["meterId"], details["used"]) == (meter["meterId"], 67)
    assert arrived(upstream, marker) == 4


def test_a_per_tool_meter_counts_tools_call_of_that_tool(api, upstream, gateway, admin_server):
    """On an MCP proxy: `tools/call` of `search` only, once per matching call of a batch.
    The body is read (and decoded) before the meters there: a meter's body checks see a
    gzip-encoded body as it is, not as an unreadable one that counts as matching."""
    made = Setup(api, upstream, proxyMcp=True)
    meters = f"{made.base}/proxies/{made.id}/meters"
    base = {"meterType": "request_count", "meterMode": "conditional"}
    searches = create(
        api,
        meters,
        {**base, "meterName": "search calls", "limits": {"day": 4},
         "predicates": {"mcpMethods": ["tools/call"], "mcpTools": ["search"]}},
        "meters",
    )  # fmt: skip
    reads = create(
        api,
        meters,
        {**base, "meterName": "read_file by body", "limits": {"day": 1},
         "predicates": {"bodyChecks": [{"path": "params.name", "equals": "read_file"}]}},
        "meters",
    )  # fmt: skip
    synced(admin_server, gateway)
    marker = uuid.uuid4().hex
    path = f"/api/{made.id}/mirror/mcp?m={marker}"

    def rpc(method: str, tool: str | None = None, id_: int = 1) -> dict:
        params = {"name": tool, "arguments": {}} if tool else {}
        return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}

    def send(body, gzipped: bool = False) -> requests.Response:
        if not gzipped:
            return call(gateway, "POST", path, headers=AUTH, json=body)
        headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"}
        data = gzip.compress(json.dumps(body).encode())
        return call(gateway, "POST", path, headers=headers, data=data)

    assert send(rpc("tools/call", "search")).status_code == 200
    assert send(rpc("tools/call", "search"), gzipped=True).status_code == 200  # 2 of 4
    assert send(rpc("tools/call", "delete_repo")).status_code == 200  # another tool
    assert send(rpc("tools/list")).status_code == 200  # another method: not counted
    batch = [rpc("tools/call", "search", 2), rpc("tools/call", "read_file", 3),
             rpc("tools/call", "search", 4)]  # fmt: skip
    assert send(batch).status_code == 200  # two searches: 4 of 4
    assert send(rpc("tools/call", "read_file"), gzipped=True).status_code == 200  # 1 of 1
    for body, meter, used in ((rpc("tools/call", "search"), searches, 4),
                              (rpc("tools/call", "read_file"), reads, 1)):  # fmt: skip
        refused = send(body, gzipped=True)
        assert refused.status_code == 429, refused.text
        details = refused.json()["error"]["details"]
        assert (details["meterId"], details["used"]) == (meter["meterId"], used)
    assert call(gateway, "GET", f"/api/{made.id}/status/200", headers=AUTH).status_code == 200
    assert arrived(upstream, marker) == 6


def test_a_per_tool_meter_counts_the_sdk_clients_calls(api, gateway, admin_server):
    """The official MCP SDK's server and client (tests/mcp_support.py): a per-tool meter
    counts the client's `tools/call search`, not its other calls, and refuses past its
    limit before the server sees the call."""
    with McpServer() as server:
        made = Setup(api, server, proxyMcp=True)
        create(
            api,
            f"{made.base}/proxies/{made.id}/meters",
            {
                "meterName": "search calls",
                "meterType": "request_count",
                "meterMode": "conditional",
                "predicates": {"mcpMethods": ["tools/call"], "mcpTools": ["search"]},
                "limits": {"day": 2},
            },
            "meters",
        )
        synced(admin_server, gateway)

        async def use(session):
            await session.list_tools()
            for query in ("a", "b"):
                await session.call_tool("search", {"query": query})
            await session.call_tool("read_file", {"path": "x"})

        with_session(f"{gateway.base_url}/api/{made.id}/mcp", AUTH, use)
        probe = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                 "params": {"name": "search", "arguments": {"query": "c"}}}  # fmt: skip
        refused = call(gateway, "POST", f"/api/{made.id}/mcp", headers=AUTH, json=probe)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["details"]["used"] == 2
        assert server.called("search") == 2 and server.called("read_file") == 1


def test_the_values_an_event_carries():
    """Extraction.event_units, the one reading of streamed and whole event streams."""
    named = compile_extraction(
        {"location": "body", "path": "usage.output_tokens", "event": "message_delta"}
    )
    delta = SseEvent("message_delta", '{"usage": {"output_tokens": 15}}')
    assert named.event_units(delta) == (15, None)
    assert named.event_units(SseEvent("message_start", delta.data)) is None  # another name
    assert named.event_units(SseEvent(None, delta.data)) is None
    every = compile_extraction({"location": "body", "path": "usage.total_tokens"})
    for data in ("[DONE]", '{"usage": null}', '{"usage": {"total_tokens": null}}', "{}", ""):
        assert every.event_units(SseEvent(None, data)) is None, data  # carries nothing
    assert every.event_units(SseEvent("x", '{"usage": {"total_tokens": 2.1}}')) == (3, None)
    for data, why in (
        ('{"usage": {"total_tokens": "12"}}', "value is not a number"),
        ('{"usage": {"total_tokens": -1}}', "value is negative"),
        ('{"usage": {"total_tokens": true}}', "value is not a number"),
    ):
        assert every.event_units(SseEvent(None, data)) == (0, why)
    stream = [SseEvent(None, f'{{"usage": {{"total_tokens": {n}}}}}') for n in (1, 2, 40)]
    assert every.stream_units([*stream, SseEvent(None, "[DONE]")]) == (43, None)
    done_only = every.stream_units([SseEvent(None, "[DONE]")])
    assert done_only == (0, "no event carried usage.total_tokens")
