"""The client side of HTTP/1 before any hook: head size limits and malformed requests in JSON.

mitmproxy 12 buffers a request head without limit ("FIXME: protect against
header size DoS" in `_http1.py`) and answers a head it cannot parse with an
HTML 400 page that no addon sees. This addon swaps in a subclass of
mitmproxy's client-side HTTP/1 connection layer that:

- answers 431 (JSON envelope, proxy-code headers, a request id) as soon as
  more than `portcullis_max_header_bytes` are buffered without the head being
  complete, so at most the limit plus one socket read (64 KiB) is held; and
  for a complete head over any limit, or with a method that is not a token or
  control characters in a header value (400), or another version than
  HTTP/1.0 or HTTP/1.1 (505, e.g. an HTTP/2 prior-knowledge preface), before
  any hook sees it;
- replaces mitmproxy's HTML 400 for an unparseable head (both
  Transfer-Encoding and Content-Length, a bad Content-Length, HTTP/0.9, a bad
  request line or header) with a JSON 400 `MALFORMED_REQUEST` and a request
  id, and keeps that request out of the pipeline entirely (no hook runs, so
  nothing can reach a target);
- sends the same JSON 400 for a framing error in the body (a bad chunk size),
  with the flow's request id, unless a response has already started;
- answers the errors mitmproxy raises on a parsed request (e.g. both
  Transfer-Encoding and Content-Length fail `validate_inbound_headers`; the
  route stage refuses such a flow, so nothing is forwarded) in JSON too;
- closes the connection after each of these, first reading and dropping what
  the client is still sending (up to `LINGER_BYTES`), so the client can read
  the answer instead of getting a reset;
- closes a connection that sends more than `portcullis_max_header_bytes`
  ahead while its previous request is still being answered (pipelining),
  which mitmproxy would otherwise buffer without limit;
- keeps the raw bytes of a broken head out of the log.

mitmproxy internals this relies on (pinned mitmproxy 12.2.3; the tests in
tests/test_protocol_errors.py and tests/test_header_limits.py fail if they change):

- `HttpLayer._handle_event(Start)` creates the client connection layer with
  `self.connections.setdefault(self.context.client, ...)`, so one put there
  first is kept; `HttpLayer.streams` maps stream ids to `HttpStream`s (`.flow`);
- `Http1Server`: `buf` (h11 `ReceiveBuffer`, filled in `_handle_event` before
  `state` runs), `state`, the `read_headers`, `read_body`, `wait` and `done`
  states, `stream_id`, `response`, and that the only `SendData` `read_headers`
  yields is `make_error_response`'s page (`format_error`'s HTML with the
  message in `<p>...</p>`), after which it yields `CloseConnection` and, when
  the head parsed, `ReceiveHttp(RequestHeaders)` and `ReceiveHttp(RequestProtocolError)`;
  for a good head it yields `ReceiveHttp(RequestHeaders)` and then switches to
  `read_body` (so a refusal stops iterating it there);
  `read_body` yields `CloseConnection` then `ReceiveHttp(RequestProtocolError)`
  for an h11 framing error; `send(ResponseProtocolError)` writes the HTML page;
- the `nextlayer` addon's `next_layer` hook leaves a layer another addon has
  set alone, so calling it first and adjusting its result is safe.

HTTP/2 (only with TLS and ALPN `h2` in front): heads arrive in frames the h2
library assembles; they are not guarded here, the route stage's complete-head
check (`addons.header_limits`) still answers 431.
"""

from __future__ import annotations

import html
import logging
import re

from mitmproxy import ctx, http
from mitmproxy.connection import ConnectionState
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers.http import HttpLayer, HttpStream
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    RequestHeaders,
    RequestProtocolError,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._http1 import Http1Server

from addons.header_limits import (
    OPTIONS,
    HeaderLimits,
    bad_method,
    control_character_in,
    remember,
    validate,
)
from addons.responses import DENIED, TARGET_UNREACHABLE, proxy_error
from addons.state import new_request_id, state_of

MALFORMED = "MALFORMED_REQUEST"
MALFORMED_MESSAGE = "The request is not valid HTTP/1.1"
LINGER_BYTES = 1024 * 1024  # read and dropped after a refusal before closing
HEAD_END = re.compile(rb"\n\r?\n")  # what h11 looks for at the end of a head
ERROR_PAGE_MESSAGE = re.compile(rb"<p>(.*)</p>", re.DOTALL)
MAX_REASON_CHARS = 300
HTTP1_VERSIONS = (b"HTTP/1.0", b"HTTP/1.1")


def wire_bytes(response: http.Response) -> bytes:
    """`response` as HTTP/1.1 bytes, telling the client the connection closes."""
    response.headers["Connection"] = "close"
    return http1.assemble_response(response)


def malformed(reason: str, request_id: str) -> http.Response:
    return proxy_error(
        400,
        DENIED,
        MALFORMED,
        MALFORMED_MESSAGE,
        {"reason": reason[:MAX_REASON_CHARS]},
        request_id,
    )


def unsupported_version(request_id: str) -> http.Response:
    return proxy_error(
        505,
        DENIED,
        "HTTP_VERSION_NOT_SUPPORTED",
        "Use HTTP/1.1 (or HTTP/1.0; HTTP/2 only over TLS with ALPN h2)",
        None,
        request_id,
    )


def failed(status: int, reason: str, request_id: str) -> http.Response:
    """The answer for an error mitmproxy reports on a stream (`ResponseProtocolError`)."""
    if status < 500:
        return malformed(reason, request_id)
    message = "The gateway could not complete this request"  # reason may name internal hosts
    return proxy_error(status, TARGET_UNREACHABLE, "BAD_GATEWAY", message, None, request_id)


def reason_of(error_page: bytes) -> str:
    """The message in mitmproxy's HTML error page."""
    found = ERROR_PAGE_MESSAGE.search(error_page)
    if found is None:
        return "unparseable request head"
    return html.unescape(found.group(1).decode("utf-8", "replace"))


def is_protocol_error(command: commands.Command) -> bool:
    return isinstance(command, ReceiveHttp) and isinstance(command.event, RequestProtocolError)


class GuardedHttp1Server(Http1Server):
    """mitmproxy's client-side HTTP/1 layer with head limits and JSON protocol errors."""

    def __init__(self, context, streams: dict[int, HttpStream]):
        super().__init__(context)
        self.streams = streams
        self.lingering: int | None = None  # bytes dropped since a refusal, None before one

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if self.lingering is not None and isinstance(event, events.ConnectionEvent):
            if isinstance(event, events.DataReceived):
                self.lingering += len(event.data)
                if self.lingering <= LINGER_BYTES:
                    return
            yield commands.CloseConnection(self.conn)
            self.lingering = None
            self.state = self.done
            return
        if (
            isinstance(event, events.DataReceived)
            and self.state == self.wait
            and len(self.buf) + len(event.data) > self.limits().max_bytes
        ):
            yield commands.Log(
                f"{self._peer()}: closing a connection that sent too much ahead "
                f"of its pending response",
                logging.INFO,
            )
            yield commands.CloseConnection(self.conn)
            self.state = self.done
            return
        yield from super()._handle_event(event)

    def limits(self) -> HeaderLimits:
        return HeaderLimits.configured(self.context.options)

    def _peer(self) -> str:
        host, port, *_ = self.conn.peername or ("?", 0)
        return f"{host}:{port}"

    def refuse(self, response: http.Response, why: str) -> layer.CommandGenerator[None]:
        """Send `response`, stop reading requests, drop what follows, then close."""
        self.lingering = 0  # first: what this yields must not be taken for mitmproxy's
        request_id = response.headers.get("portcullis-request-id", "")
        yield commands.Log(f"{self._peer()}: {why} (request id {request_id})", logging.INFO)
        if self.conn.state & ConnectionState.CAN_WRITE:
            yield commands.SendData(self.conn, wire_bytes(response))
            yield commands.CloseTcpConnection(self.conn, half_close=True)
        self.buf.maybe_extract_at_most(len(self.buf))  # free what was buffered
        self.state = self.done

    def send(self, event) -> layer.CommandGenerator[None]:
        # mitmproxy's error for a stream (e.g. a request failing validate_inbound_headers,
        # both Transfer-Encoding and Content-Length): JSON instead of its HTML page.
        if (
            isinstance(event, ResponseProtocolError)
            and self.response is None
            and self.conn.state & ConnectionState.CAN_WRITE
            and (status := event.code.http_status_code()) is not None
        ):
            answer = failed(status, event.message, self._request_id(event.stream_id))
            yield from self.refuse(answer, f"answered a stream error with {status}")
            return
        yield from super().send(event)

    def read_headers(self, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
        if isinstance(event, events.DataReceived):
            limits = self.limits()
            if len(self.buf) > limits.max_bytes and not HEAD_END.search(
                bytes(self.buf), 0, limits.max_bytes + 4
            ):
                exceeded = limits.head_too_large()
                yield from self.refuse(
                    exceeded.response(new_request_id()), "refused an oversized request head"
                )
                return
        elif isinstance(event, events.ConnectionClosed):
            if bytes(self.buf).strip():
                # mitmproxy would log the partial head, credentials and all.
                yield commands.Log(
                    f"{self._peer()}: client closed the connection before completing "
                    f"request headers ({len(self.buf)} bytes)",
                    logging.INFO,
                )
            yield commands.CloseConnection(self.conn)
            return
        refused = False
        for command in super().read_headers(event):
            if (
                isinstance(command, commands.SendData)
                and command.connection is self.conn
                and self.lingering is None
            ):
                # mitmproxy's HTML error page for a head it cannot parse (not our own
                # answer from read_body, which mitmproxy runs from inside read_headers).
                reason = reason_of(command.data)
                answer = malformed(reason, new_request_id())
                yield from self.refuse(answer, "refused a malformed request head")
                refused = True
            elif refused:
                # Its CloseConnection (we linger instead), its log line with the raw
                # request line, and the broken request as a flow: none of them wanted.
                continue
            elif self._is_new_head(command) and (refusal := self.check_head(command)):
                yield from self.refuse(*refusal)
                break  # mitmproxy would go on to read the body of the refused request
            else:
                yield command

    def _is_new_head(self, command: commands.Command) -> bool:
        return (
            self.lingering is None
            and isinstance(command, ReceiveHttp)
            and isinstance(command.event, RequestHeaders)
        )

    def check_head(self, command: ReceiveHttp) -> tuple[http.Response, str] | None:
        """A parsed head over the limits (431) or with control characters (400), before any
        hook sees it, so the connection can be closed instead of the body drained."""
        request = command.event.request
        exceeded = self.limits().check_request(request)
        if exceeded is not None:
            return exceeded.response(new_request_id()), "refused an oversized request head"
        if request.data.http_version not in HTTP1_VERSIONS:
            # e.g. `PRI * HTTP/2.0`: mitmproxy would kill the connection without a word.
            return unsupported_version(new_request_id()), "refused an HTTP version"
        if bad_method(request.data.method):
            reason = "the method is not an HTTP token"
            return malformed(reason, new_request_id()), "refused a request with a bad method"
        name = control_character_in(request.headers.fields)
        if name is not None:
            reason = f"header {name} holds a control character"
            return malformed(reason, new_request_id()), "refused a head with control characters"
        return None

    def read_body(self, event: events.Event) -> layer.CommandGenerator[None]:
        closing: commands.Command | None = None
        for command in super().read_body(event):
            if isinstance(command, commands.CloseConnection) and command.connection is self.conn:
                closing = command  # a framing error follows: answer before closing
                continue
            if closing is not None and is_protocol_error(command):
                if self.response is None:
                    answer = malformed(command.event.message, self._request_id(self.stream_id))
                    yield from self.refuse(answer, "refused a request with bad body framing")
                else:
                    yield closing
                yield command  # the stream learns of the error (error hook, upstream aborted)
                closing = None
                continue
            yield command
        if closing is not None:
            yield closing

    def _request_id(self, stream_id: int) -> str:
        """The flow's request id when the pipeline has seen it, else a fresh one."""
        stream = self.streams.get(stream_id)
        state = state_of(stream.flow) if stream is not None and hasattr(stream, "flow") else None
        return state.request_id if state is not None else new_request_id()


class GuardedHttpLayer(HttpLayer):
    """An `HttpLayer` whose HTTP/1 client side is a `GuardedHttp1Server`."""

    def _handle_event(self, event: events.Event):
        client = self.context.client
        if (
            isinstance(event, events.Start)
            and client not in self.connections
            and client.alpn not in (b"h2", b"h3")
            and not (client.alpn or b"").startswith(b"h3-")
        ):
            self.connections[client] = GuardedHttp1Server(self.context.fork(), self.streams)
        yield from super()._handle_event(event)


def guard(top: layer.Layer | None) -> None:
    """Make every `HttpLayer` in a freshly decided layer stack a `GuardedHttpLayer`."""
    current = top
    while current is not None:
        if type(current) is HttpLayer:
            current.__class__ = GuardedHttpLayer  # same state, guarded client side
        current = getattr(current, "child_layer", None)


class ProtocolGuard:
    """Declares the head limits and guards every HTTP layer mitmproxy sets up."""

    def load(self, loader) -> None:
        for name, (default, help_text) in OPTIONS.items():
            loader.add_option(name, int, default, help_text)

    def configure(self, updated) -> None:
        validate(ctx.options, updated)
        if updated & OPTIONS.keys():
            remember(ctx.options)

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        # Scripts run before mitmproxy's own `nextlayer` addon: let it decide now, then
        # adjust its choice (it leaves a layer that is already set alone).
        if nextlayer.layer is None:
            decider = ctx.master.addons.get("nextlayer")
            if decider is None:
                return
            decider.next_layer(nextlayer)
        guard(nextlayer.layer)
