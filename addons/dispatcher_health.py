"""The health answer of a dispatcher-only process (`run_proxy.py --dispatcher-only`).

Such a process serves no proxy traffic (mitmproxy's proxy server is off), so
mitmproxy does not answer `/_portcullis/health` for it. This small listener on
the process's `--listen-host`/`--listen-port` does, with the same report as a
gateway's (addons/health.py: configuration version, store reachability) plus
`"role": "dispatcher"`. Every other path answers a JSON 404; nothing is ever
forwarded. It reads at most one small request head per connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from mitmproxy import ctx

from addons.config import Config
from addons.health import HEALTH_PATH, METHODS, STALE_OPTION, health_report

log = logging.getLogger("portcullis.dispatcher")
HEAD_LIMIT = 8 * 1024
READ_TIMEOUT_S = 5
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           503: "Service Unavailable"}  # fmt: skip


def error_body(code: str, message: str) -> dict:
    return {"message": message, "error": {"code": code, "message": message, "details": {}}}


def health_answer(config: Config, method: str, target: str) -> tuple[int, dict, bool]:
    """The status, JSON body and whether to send the body, for one request line."""
    path = target.partition("?")[0]
    if path != HEALTH_PATH:
        message = f"A dispatcher-only process answers {HEALTH_PATH} only"
        return 404, error_body("NOT_FOUND", message), True
    if method not in METHODS:
        message = f"{HEALTH_PATH} answers {' and '.join(METHODS)} only"
        return 405, error_body("METHOD_NOT_ALLOWED", message), True
    status, body = health_report(config, time.monotonic(), getattr(ctx.options, STALE_OPTION))
    body["role"] = "dispatcher"
    return status, body, method != "HEAD"


class DispatcherHealth:
    """An asyncio server answering `GET /_portcullis/health` for a dispatcher-only process."""

    def __init__(self, config: Config):
        self.config = config
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on `host:port`; if that fails, say so (delivery goes on without it)."""
        try:
            self._server = await asyncio.start_server(
                self._serve,
                host or None,
                port,
                limit=HEAD_LIMIT,  # "": every address
            )
        except OSError as exc:
            log.error("Dispatcher-only health cannot listen on %s:%d: %s", host, port, exc)
            return
        bound = self._server.sockets[0].getsockname()
        # The same words as mitmproxy's own line, so scripts waiting for it work alike.
        log.warning("Dispatcher-only health listening at %s:%d", bound[0], bound[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, target = parse_request_line(head)
            if method is None:
                status, body, send = 400, error_body("BAD_REQUEST", "Malformed request"), True
            else:
                status, body, send = health_answer(self.config, method, target)
            content = json.dumps(body).encode() if send else b""
            length = len(json.dumps(body).encode())
            writer.write(
                f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
                "Content-Type: application/json\r\nCache-Control: no-store\r\n"
                f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode()
                + content
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):  # fmt: skip
            pass  # a client that sent no complete head gets no answer
        except Exception:
            log.exception("dispatcher health answer failed")
        finally:
            writer.close()


def parse_request_line(head: bytes) -> tuple[str | None, str]:
    if len(head) > HEAD_LIMIT:
        return None, ""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None, ""
    return parts[0], parts[1]
