"""`responses.new_response` builds what mitmproxy's `http.Response` constructor builds,
without its debug-only type check: the two must be equal for every kind of answer the
gateway builds from a target's (encoded bodies, repeated headers, bodyless, odd reasons),
and the result must behave as any response does afterwards."""

from __future__ import annotations

import gzip

import pytest
from mitmproxy import http
from mitmproxy.net.http.http1 import assemble_response

from addons.outbound import to_flow_response
from addons.responses import new_response
from addons.upstream import UpstreamResponse

ANSWERS = {
    "json": (200, b"OK", ((b"Content-Type", b"application/json"),), b'{"a": 1}'),
    "gzip": (200, b"OK", ((b"Content-Encoding", b"gzip"),), gzip.compress(b"x" * 100)),
    "repeated": (201, b"Created", ((b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2")), b""),
    "no-content": (204, b"No Content", (), b""),
    "odd-reason": (418, "I’m a teapot".encode("latin-1", "replace"), ((b"X", b"\xff"),), b"t"),
}


@pytest.mark.sqlite_only  # no store involved
@pytest.mark.parametrize("name", ANSWERS)
def test_new_response_equals_what_the_constructor_builds(name):
    status, reason, fields, content = ANSWERS[name]
    built = new_response(status, reason, http.Headers(fields), content, 1.5, 2.5)
    constructed = http.Response(
        b"HTTP/1.1", status, reason, http.Headers(fields), content, None, 1.5, 2.5
    )
    assert built.get_state() == constructed.get_state()
    assert assemble_response(built) == assemble_response(constructed)
    built.headers["portcullis-request-id"] = "r-1"  # what the stages after forward do
    built.content = b"replaced"  # encoded again as its Content-Encoding says, and framed
    assert built.content == b"replaced"
    assert built.headers["content-length"] == str(len(built.raw_content))
    assert built.headers["portcullis-request-id"] == "r-1"


@pytest.mark.sqlite_only
@pytest.mark.parametrize("name", ANSWERS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_targets_answer_reaches_the_flow_as_it_came(name, method):
    status, reason, fields, content = ANSWERS[name]
    upstream = UpstreamResponse(status, reason.decode("latin-1"), fields, content, 1.5, 2.5)
    response = to_flow_response(upstream, method)
    assert (response.status_code, response.raw_content) == (status, content)
    assert response.headers.fields[: len(fields)] == fields
    framed = method != "HEAD" and status != 204
    assert response.headers.get("content-length") == (str(len(content)) if framed else None)
