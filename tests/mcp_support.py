"""A real MCP server for data-plane tests: the official `mcp` SDK's FastMCP over Streamable HTTP.

It serves on 127.0.0.1 (uvicorn, in a thread of the test process) at `/base/mcp`,
so a proxy whose target base URL is `McpServer.base_url + "/base"` reaches it as
`/api/{proxyId}/mcp`. Tools: `search`, `read_file`, `delete_repo`; each call is
recorded (`McpServer.calls`), so a test sees what reached the server.
`json_response=True` answers each POST with JSON instead of an event stream.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.fastmcp import FastMCP

TOOLS = ("search", "read_file", "delete_repo")
START_TIMEOUT_S = 15
PATH = "/base/mcp"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class McpServer:
    """The FastMCP server in a thread; a context manager."""

    def __init__(self, json_response: bool = False):
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.calls: list[tuple[str, dict]] = []
        server = FastMCP(
            "portcullis-test",
            host="127.0.0.1",
            port=self.port,
            streamable_http_path=PATH,
            json_response=json_response,
            log_level="WARNING",
        )

        @server.tool()
        def search(query: str) -> str:
            """Search the repository."""
            self.calls.append(("search", {"query": query}))
            return f"found: {query}"

        @server.tool()
        def read_file(path: str) -> str:
            """Read a file."""
            self.calls.append(("read_file", {"path": path}))
            return f"contents of {path}"

        @server.tool()
        def delete_repo(name: str) -> str:
            """Delete a repository."""
            self.calls.append(("delete_repo", {"name": name}))
            return f"deleted {name}"

        config = uvicorn.Config(
            server.streamable_http_app(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uvicorn.run, daemon=True)

    def __enter__(self) -> McpServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._uvicorn.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the MCP server did not start")
            time.sleep(0.02)  # polling the server's own started flag, bounded
        return self

    def __exit__(self, *exc) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout=10)

    def called(self, tool: str) -> int:
        return sum(1 for name, _args in self.calls if name == tool)


def with_session(url: str, headers: dict, use: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """Run `use` with an initialized SDK client session to `url` (through the gateway)."""

    async def run() -> Any:
        async with (
            httpx.AsyncClient(headers=headers, timeout=15) as http_client,
            streamable_http_client(url, http_client=http_client) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await use(session)

    return asyncio.run(run())
