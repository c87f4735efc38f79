"""The Async API's 202 is built without `http.Response.make` (addons/async_queue.py,
`queued_response`): it must be the very response `make` gives, byte for byte on the wire."""

from __future__ import annotations

import json

import pytest
from mitmproxy import http
from mitmproxy.net.http.http1 import assemble_response

from addons.async_queue import QUEUED_MESSAGE, REPEATED_MESSAGE, queued_response


def made(request_id: str, repeated: bool) -> http.Response:
    """The 202 as it was built before: json.dumps and Response.make."""
    message = REPEATED_MESSAGE if repeated else QUEUED_MESSAGE
    answer = {"status": "queued", "requestId": request_id, "message": message}
    headers = {"Content-Type": "application/json"}
    if repeated:
        headers["Idempotent-Replayed"] = "true"
    return http.Response.make(202, json.dumps(answer).encode(), headers)


@pytest.mark.sqlite_only  # no store involved
@pytest.mark.parametrize("repeated", [False, True])
@pytest.mark.parametrize("request_id", ["3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b", 'odd"id\\é'])
def test_the_202_is_what_response_make_builds(request_id, repeated):
    fast, slow = queued_response(request_id, repeated), made(request_id, repeated)
    assert assemble_response(fast) == assemble_response(slow)
    assert fast.headers.fields == slow.headers.fields
    assert json.loads(fast.content)["requestId"] == request_id
    # A real, mutable response: the stages after accept add headers to it.
    fast.headers["portcullis-request-id"] = "x"
    assert fast.headers["portcullis-request-id"] == "x" and fast.status_code == 202
    assert fast.timestamp_start is not None and fast.timestamp_end is not None
