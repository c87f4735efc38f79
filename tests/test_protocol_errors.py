"""Requests mitmproxy cannot parse answer the gateway's JSON 400 with a request id, then close.

Over raw sockets against a real `run_proxy.py`: ambiguous framing (both
Transfer-Encoding and Content-Length), bad or negative lengths, HTTP/0.9,
broken request lines and header fields, and broken chunked bodies, on the
Proxy API and the Async API, with a valid credential. None reaches the
upstream, and the raw request never shows in the data plane's log.
"""

from __future__ import annotations

import itertools

import pytest

from tests.proxy_support import CALLER_KEY, Setup, served_setup
from tests.raw_http import exchange
from tests.support import Api

_marks = itertools.count(1)
PREFIXES = pytest.mark.parametrize("prefix", ["api", "async"])


@pytest.fixture(scope="module")
def setup(admin_server, owner, upstream, gateway) -> Setup:
    """One proxy for every test here (not one each: 39 tests, about half a second of
    set-up apiece): each tells its requests apart by a marker of its own, and none counts
    anything per proxy."""
    return served_setup(Api(admin_server.base_url, owner.token), upstream, gateway)


KEY = CALLER_KEY.encode()
LOG_SECRET = b"LOGSECRET-proto"

# Request heads mitmproxy refuses while parsing; {target} is the request target.
MALFORMED_HEADS = {
    "te-and-cl": b"POST {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n"
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "cl-and-te": b"POST {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n"
    b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "negative-cl": b"POST {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n"
    b"Content-Length: -1\r\n\r\n",
    "text-cl": b"POST {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n"
    b"Content-Length: abc\r\n\r\n",
    "two-cl": b"POST {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n"
    b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "te-not-chunked": b"POST {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n"
    b"Transfer-Encoding: gzip\r\n\r\nabc",
    "http-0.9": b"GET {target}\r\n\r\n",
    "bad-request-line": b"GET  {target} HTTP/1.1 extra\r\nX-API-Key: {key}\r\n\r\n",
    "header-without-colon": b"GET {target} HTTP/1.1\r\nX-API-Key: {key}\r\nNoColonHere\r\n\r\n",
    "space-in-header-name": b"GET {target} HTTP/1.1\r\nX-API-Key: {key}\r\nBad Name: x\r\n\r\n",
}

# Heads that parse, with a body whose chunked framing is broken.
BROKEN_CHUNKS = {
    "chunk-size-not-hex": b"zz\r\nabc\r\n0\r\n\r\n",
    "chunk-size-negative": b"-5\r\nabcde\r\n0\r\n\r\n",
    "chunk-longer-than-size": b"3\r\nabcdef\r\n0\r\n\r\n",
    "chunk-size-overflow": b"f" * 40 + b"\r\nabc\r\n0\r\n\r\n",
}


def mark() -> str:
    return f"proto-{next(_marks)}"


def reached(upstream, marker: str) -> bool:
    return any(marker in path for path in upstream.started)


def assert_malformed(answer) -> None:
    assert answer.status == 400, answer.raw[:400]
    body = answer.json()
    assert body["error"]["code"] == "MALFORMED_REQUEST", body
    assert body["error"]["details"]["reason"]
    assert answer.header("content-type") == "application/json"
    assert answer.header("requestrocket-proxy-code") == "proxy-access-denied"
    assert answer.header("portcullis-request-id")
    assert answer.header("connection") == "close"
    assert answer.closed
    assert answer.raw.lower().count(b"\r\nportcullis-request-id:") == 1, "one answer only"


@PREFIXES
@pytest.mark.parametrize("form", MALFORMED_HEADS)
def test_malformed_heads_answer_json_400_and_close(setup, gateway, upstream, prefix, form):
    marker = mark()
    target = f"/{prefix}/{setup.id}/{marker}?Authorization={LOG_SECRET.decode()}".encode()
    raw = MALFORMED_HEADS[form].replace(b"{target}", target).replace(b"{key}", KEY)
    answer = exchange(gateway.base_url, raw, wait_for_close=True)
    assert_malformed(answer)
    assert not reached(upstream, marker)
    assert LOG_SECRET.decode() not in gateway.log_text()


@PREFIXES
@pytest.mark.parametrize("form", BROKEN_CHUNKS)
def test_broken_chunked_bodies_answer_json_400_and_close(setup, gateway, upstream, prefix, form):
    marker = mark()
    head = (
        f"POST /{prefix}/{setup.id}/{marker} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {CALLER_KEY}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    answer = exchange(gateway.base_url, head + BROKEN_CHUNKS[form], wait_for_close=True)
    assert_malformed(answer)
    assert not reached(upstream, marker)


def test_a_refused_body_with_broken_framing_still_gets_json(setup, gateway, upstream):
    """The credential is wrong (the 401 waits for the body); the framing error answers first."""
    marker = mark()
    head = (
        f"POST /api/{setup.id}/{marker} HTTP/1.1\r\nHost: gw\r\nX-API-Key: wrong\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    answer = exchange(gateway.base_url, head + b"zz\r\n", wait_for_close=True)
    assert answer.status in (400, 401), answer.raw[:300]
    assert answer.json()["error"]["code"] in ("MALFORMED_REQUEST", "UNAUTHORIZED")
    assert answer.header("portcullis-request-id")
    assert not reached(upstream, marker)


def test_a_partial_head_is_not_logged(setup, gateway):
    """A client that hangs up mid-head: mitmproxy would log the bytes, credentials included."""
    partial = f"GET /api/{setup.id}/x?Authorization={LOG_SECRET.decode()}-partial HTTP/1.1\r\n"
    answer = exchange(gateway.base_url, partial.encode(), timeout=1)
    assert answer.status is None
    assert f"{LOG_SECRET.decode()}-partial" not in gateway.log_text()


def test_the_connection_serves_well_formed_requests_before_a_malformed_one(setup, gateway):
    good = f"GET /api/{setup.id}/ok HTTP/1.1\r\nHost: gw\r\nX-API-Key: {CALLER_KEY}\r\n\r\n"
    bad = "GET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n"
    answer = exchange(gateway.base_url, (good + bad).encode(), wait_for_close=True)
    assert answer.status == 200
    assert b"MALFORMED_REQUEST" in answer.raw and answer.closed


@PREFIXES
@pytest.mark.parametrize("version", [b"HTTP/7.1", b"HTTP/1.2", b"HTTP/0.9", b"HTTP/2.1"])
def test_unknown_http_versions_answer_505(setup, gateway, upstream, prefix, version):
    marker = mark()
    raw = b"GET /%s/%s/%s %s\r\nHost: gw\r\nX-API-Key: %s\r\n\r\n" % (
        prefix.encode(),
        setup.id.encode(),
        marker.encode(),
        version,
        KEY,
    )
    answer = exchange(gateway.base_url, raw)
    assert answer.status == 505, answer.raw[:300]
    assert answer.json()["error"]["code"] == "HTTP_VERSION_NOT_SUPPORTED"
    assert answer.header("portcullis-request-id")
    assert not reached(upstream, marker)


def test_the_mitmproxy_internals_the_guard_relies_on_are_unchanged():
    """addons/protocol_guard.py subclasses mitmproxy's HTTP/1 server layer: re-read it on a bump."""
    import inspect

    from mitmproxy import version
    from mitmproxy.proxy.layers.http import HttpLayer, _http1

    from addons.protocol_guard import reason_of

    assert version.VERSION == "12.2.3"
    assert reason_of(_http1.make_error_response(400, "bad <line> & more")) == "bad <line> & more"
    start = inspect.getsource(HttpLayer._handle_event)
    assert "self.connections.setdefault(self.context.client, http_conn)" in start
    read_headers = inspect.getsource(_http1.Http1Server.read_headers)
    assert (
        "make_error_response(400" in read_headers
        and "self.buf.maybe_extract_lines()" in read_headers
    )
    for state in ("read_headers", "read_body", "wait", "done", "send", "_handle_event"):
        assert callable(getattr(_http1.Http1Server, state))


def test_http2_prior_knowledge_is_refused_on_the_plain_port(gateway):
    """Without TLS there is no ALPN, so HTTP/2 cannot start: its preface is refused in JSON."""
    answer = exchange(gateway.base_url, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", wait_for_close=True)
    assert answer.status == 505, answer.raw[:300]
    assert answer.json()["error"]["code"] == "HTTP_VERSION_NOT_SUPPORTED"
    assert answer.header("portcullis-request-id") and answer.closed
