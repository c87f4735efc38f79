"""The request log page for issue 18's answers, in headless Chromium.

One story: a Server-Sent Events answer that is really streamed (the target holds its
last event until the caller has the first one, through the gateway) and an MCP batch
on a proxy marked as an MCP server; the log lists both with whether they were streamed,
their size, duration and the JSON-RPC methods and tools, each request's page says the
same in words, and the MCP proxy's telemetry page charts its tool calls. Real admin,
real mitmdump, real upstreams on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from tests.proxy_support import CALLER_KEY, Setup, call, wait_until_served
from tests.web_support import reload_until, sign_in

AUTH = {"X-API-Key": CALLER_KEY}
FIRST, LAST = b"data: first\n\n", b"data: last\n\n"
HELD_MAX_S = 10


class HeldEvents(BaseHTTPRequestHandler):
    """`GET /…/events`: an SSE answer whose last event waits for `server.release`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if not self.path.endswith("/events"):  # readiness probes
            self.send_response(204)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(FIRST)
        self.server.release.wait(HELD_MAX_S)
        self._chunk(LAST)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


@pytest.fixture(scope="module")
def sse_target():
    server = ThreadingHTTPServer(("127.0.0.1", 0), HeldEvents)
    server.daemon_threads = True
    server.release = threading.Event()
    server.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def stream_through(gateway, made: Setup, release: threading.Event) -> bytes:
    """The SSE answer through the gateway: the first event arrives while the target still
    holds the last one (so the answer was streamed), then the target is let go."""
    with call(gateway, "GET", f"/api/{made.id}/events", headers=AUTH, stream=True) as answer:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/event-stream")
        received = answer.raw.read(len(FIRST))
        assert received == FIRST
        release.set()
        return received + answer.raw.read()


def rpc(method: str, tool: str | None, id_: int) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": method,
            "params": {"name": tool, "arguments": {}} if tool else {}}  # fmt: skip


def test_the_log_shows_streamed_answers_and_mcp_calls(page: Page, admin_server, api, owner,
                                                      gateway, upstream, sse_target):  # fmt: skip
    streamed = Setup(api, sse_target)
    wait_until_served(gateway, f"/api/{streamed.id}/ready", AUTH)
    body = stream_through(gateway, streamed, sse_target.release)
    assert body == FIRST + LAST

    mcp = Setup(api, upstream, proxyMcp=True)
    wait_until_served(gateway, f"/api/{mcp.id}/status/204", AUTH)
    batch = [rpc("tools/call", "search", 1), rpc("tools/list", None, 2)]
    answer = call(gateway, "POST", f"/api/{mcp.id}/status/200", headers=AUTH, json=batch)
    assert answer.status_code == 200, answer.text

    sign_in(page, admin_server.base_url, owner.token)
    ui = f"{admin_server.base_url}/ui/c"
    page.goto(f"{ui}/{streamed.client_id}/proxies/{streamed.id}/requests")
    row = page.locator("#request-log tbody tr", has_text="/events")
    reload_until(page, row)
    expect(row.locator("td.streamed")).to_have_text("yes")
    expect(row.locator("td.size")).to_have_text(f"{len(body)} B")
    expect(page.locator("#request-log td.mcp")).to_have_count(0)  # not an MCP proxy
    ready = page.locator("#request-log tbody tr", has_text="/ready").first
    expect(ready.locator("td.streamed")).to_have_text("no")  # 204: nothing to stream
    row.get_by_role("link").click()
    expect(page.locator("#answer-stream")).to_have_text("streamed")
    expect(page.locator("#answer-size")).to_have_text(f"{len(body)} B")
    expect(page.locator("#answer-duration")).to_contain_text("until the stream ended")
    expect(page.locator("#answer")).to_contain_text("proxy-access-granted")
    expect(page.locator("#mcp-calls")).to_have_count(0)

    page.goto(f"{ui}/{mcp.client_id}/proxies/{mcp.id}/requests")
    row = page.locator("#request-log tbody tr", has_text="POST")
    reload_until(page, row)
    expect(row.locator("td.mcp")).to_have_text("tools/call search, tools/list")
    ready = page.locator("#request-log tbody tr", has_text="/status/204").first
    expect(ready.locator("td.mcp")).to_have_text("—")  # a GET on an MCP proxy: no call
    # The size is the target's answer's (the recording upstream's `{"status": 200}`): the
    # tools/list filter may re-serialize what the caller gets.
    expect(row.locator("td.size")).to_have_text(f"{len(json.dumps({'status': 200}))} B")
    row.get_by_role("link").click()
    calls = page.locator("#mcp-calls li")
    expect(calls).to_have_text(["method tools/call, tool search", "method tools/list"])
    expect(page.locator("#answer")).to_contain_text("MCP batch")
    expect(page.locator("#answer-stream")).to_have_text("buffered")

    # The telemetry page charts the MCP proxy's tool calls (tools/list is not one).
    page.goto(f"{ui}/{mcp.client_id}/proxies/{mcp.id}/telemetry?interval=minute")
    bar = page.locator('figure[data-chart="MCP tool calls"] rect[data-label="search"]')
    reload_until(page, bar)
    expect(bar).to_have_attribute("data-value", "1")
    expect(page.locator('figure[data-chart="MCP tool calls"] rect')).to_have_count(1)
    page.goto(f"{ui}/{streamed.client_id}/proxies/{streamed.id}/telemetry?interval=minute")
    expect(page.locator('figure[data-chart="Status codes"]')).to_be_visible()
    expect(page.locator('figure[data-chart="MCP tool calls"]')).to_have_count(0)
