"""Rules that read the request body (issue 18), end to end: a real admin, a real mitmdump,
the recording upstream. The body is read (within `portcullis_max_inspected_body_bytes`,
1 MiB) only for proxies whose rules need it; what the rules refuse, or cannot read, never
reaches the target."""

from __future__ import annotations

import gzip
import json
import time
import uuid
import zlib

import brotli

from tests.proxy_support import CALLER_KEY, Setup, call, logged
from tests.stream_support import StreamingTarget
from tests.test_streaming import h2_client  # HTTP/2 from the caller (TLS, ALPN h2 only)

AUTH = {"X-API-Key": CALLER_KEY}
BOUND = 1024 * 1024
DEADLINE_S = 10


def arrived(upstream, marker: str) -> list:
    return [r for r in upstream.received if marker in r.query]


def chunked(body: bytes, size: int = 64 * 1024):
    """`body` as a generator: requests sends it with Transfer-Encoding: chunked."""
    for at in range(0, len(body), size):
        yield body[at : at + size]


def served(gateway, path: str, expect_status: int, **kwargs):
    """Poll until the data plane applies a new rule (a real change, bounded)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        response = call(gateway, "POST", path, **kwargs)
        if response.status_code == expect_status or time.monotonic() > deadline:
            return response
        time.sleep(0.05)  # polling a real process for the snapshot, bounded by the deadline


def body_rule_proxy(api, upstream, gateway, **proxy_fields) -> Setup:
    """A proxy denying `model` ^gpt-4o and raw bodies holding DROP TABLE, rules applied."""
    made = Setup(api, upstream, **proxy_fields)
    scope = f"proxies/{made.id}"
    made.rule(
        scope, {"effect": "deny", "bodyChecks": [{"path": "model", "valuePattern": "^gpt-4o"}]}
    )
    made.rule(scope, {"effect": "deny", "bodyPattern": "DROP TABLE", "regexFlags": "i"})
    # Both rules in the snapshot: a snapshot taken between the two creations has only the first.
    for probe in (json.dumps({"model": "gpt-4o"}).encode(), b"drop table probes"):
        ready = served(gateway, f"/api/{made.id}/probe", 403, headers=AUTH, data=probe)
        assert ready.status_code == 403, ready.text
    return made


def test_body_rules_decide_on_json_fields_and_raw_text(api, upstream, gateway):
    made = body_rule_proxy(api, upstream, gateway)
    marker = uuid.uuid4().hex
    path = f"/api/{made.id}/v1/chat?m={marker}"
    json_headers = {**AUTH, "Content-Type": "application/json"}
    denied_bodies = {
        "json": (json.dumps({"model": "gpt-4o"}).encode(), {}),
        "json variant": (json.dumps({"model": "gpt-4o-mini", "n": 1}).encode(), {}),
        "gzip": (gzip.compress(b'{"model": "gpt-4o"}'), {"Content-Encoding": "gzip"}),
        "deflate": (zlib.compress(b'{"model": "gpt-4o"}'), {"Content-Encoding": "deflate"}),
        "br": (brotli.compress(b'{"model": "gpt-4o"}'), {"Content-Encoding": "br"}),
        "raw text": (b"name=x; drop table users", {"Content-Type": "text/plain"}),
        "raw invalid utf-8": (b"\xff\xfe DROP TABLE \xc3", {"Content-Type": "text/plain"}),
    }
    for name, (body, extra) in denied_bodies.items():
        refused = call(gateway, "POST", path, headers={**json_headers, **extra}, data=body)
        assert refused.status_code == 403, (name, refused.text)
        assert refused.json()["error"]["code"] == "FORBIDDEN", name
        assert refused.headers["requestrocket-proxy-code"] == "proxy-access-denied", name
    # A chunked body is read whole before the rules decide, too.
    refused = call(
        gateway, "POST", path, headers=json_headers, data=chunked(b'{"model": "gpt-4o"}', 4)
    )
    assert refused.status_code == 403, refused.text
    assert arrived(upstream, marker) == [], "a denied body reached the target"

    allowed_bodies = [
        json.dumps({"model": "small"}).encode(),
        json.dumps({"messages": [{"model": "gpt-4o"}]}).encode(),  # another path
        b"model=gpt-4o",  # not JSON: no `model` field, no DROP TABLE
        b"",
    ]
    for body in allowed_bodies:
        answered = call(gateway, "POST", path, headers=json_headers, data=body)
        assert answered.status_code == 200, (body, answered.text)
    encoded = gzip.compress(b'{"model": "small"}')
    answered = call(
        gateway, "POST", path, headers={**json_headers, "Content-Encoding": "gzip"}, data=encoded
    )
    assert answered.status_code == 200, answered.text
    received = upstream.wait_for(len(upstream.received))
    sent = [r.body for r in received if marker in r.query]
    # The target gets the bodies byte for byte as sent (still encoded when they were).
    assert sent == [*allowed_bodies, encoded]
    entry = logged(api, made, refused.headers["portcullis-request-id"])
    assert entry["proxyData"]["proxyCode"] == "proxy-access-denied"
    # The Async API decides on the body the same way, before anything is queued.
    async_path = f"/async/{made.id}/v1/chat?m={marker}"
    refused = call(gateway, "POST", async_path, headers=AUTH, data=b'{"model": "gpt-4o"}')
    assert refused.status_code == 403, refused.text
    accepted = call(gateway, "POST", async_path, headers=AUTH, data=b'{"model": "small"}')
    assert accepted.status_code == 202, accepted.text


def test_bodies_over_the_bound_or_unreadable_are_refused_and_never_forwarded(
    api, upstream, gateway
):
    made = body_rule_proxy(api, upstream, gateway)
    marker = uuid.uuid4().hex
    path = f"/api/{made.id}/upload?m={marker}"
    big = json.dumps({"model": "small", "pad": "x" * (2 * 1024 * 1024)}).encode()
    for name, data in (("content-length", big), ("chunked", chunked(big))):
        refused = call(gateway, "POST", path, headers=AUTH, data=data)
        assert refused.status_code == 413, (name, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "REQUEST_BODY_TOO_LARGE", name
        assert error["details"]["limit"] == BOUND, name
        assert refused.headers["requestrocket-proxy-code"] == "request-too-large", name
    # Decoding is bounded too: a small gzip body inflating past the bound.
    bomb = gzip.compress(b'{"model": "small", "pad": "' + b"x" * (4 * BOUND) + b'"}')
    refused = call(gateway, "POST", path, headers={**AUTH, "Content-Encoding": "gzip"}, data=bomb)
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["code"] == "REQUEST_BODY_TOO_LARGE"
    for encoding, body in (("zstd", b"(\xb5/\xfd"), ("gzip", b"not gzip"), ("gzip, br", b"x")):
        refused = call(
            gateway, "POST", path, headers={**AUTH, "Content-Encoding": encoding}, data=body
        )
        assert refused.status_code == 415, (encoding, refused.text)
        assert refused.json()["error"]["code"] == "BODY_NOT_INSPECTABLE", encoding
    entry = logged(api, made, refused.headers["portcullis-request-id"])
    assert entry["proxyData"]["proxyCode"] == "proxy-access-denied"
    # A body exactly at the bound is read and checked, and passes.
    at_bound = b'{"model": "small", "pad": "' + b"y" * (BOUND - 29) + b'"}'
    assert len(at_bound) == BOUND
    answered = call(gateway, "POST", path, headers=AUTH, data=at_bound)
    assert answered.status_code == 200, answered.text
    received = upstream.wait_for(len(upstream.received))
    assert [len(r.body) for r in received if marker in r.query] == [BOUND]


# Bodies a lenient target would parse (or read differently) that our strict parser cannot
# check: each looks like JSON, so it is refused rather than forwarded as "not JSON".
NOT_STRICT_JSON = {
    "repeated name": b'{"model": "gpt-4o", "model": "small"}',
    "repeated nested name": b'{"a": {"model": "gpt-4o", "model": "small"}}',
    "repeated name, utf-16": '{"model": "gpt-4o", "model": "small"}'.encode("utf-16"),
    "number out of range": b'{"model": "gpt-4o", "n": 1e400}',
    "lone surrogate": b'{"model": "gpt-4o", "x": "\\ud800"}',
    "NaN": b'{"model": "gpt-4o", "t": NaN}',
    "Infinity": b'[{"model": "gpt-4o", "t": -Infinity}]',
    "too deep": b'{"model": "gpt-4o", "x": ' + b"[" * 70 + b"]" * 70 + b"}",
    "trailing comma": b'{"model": "gpt-4o",}',
    "byte order mark": b'\xef\xbb\xbf {"model": "gpt-4o", "model": "small"}',
}


def test_bodies_that_only_look_like_json_are_refused_and_never_forwarded(api, upstream, gateway):
    made = body_rule_proxy(api, upstream, gateway)
    marker = uuid.uuid4().hex
    path = f"/api/{made.id}/v1/chat?m={marker}"
    headers = {**AUTH, "Content-Type": "application/json"}
    for name, body in NOT_STRICT_JSON.items():
        refused = call(gateway, "POST", path, headers=headers, data=body)
        assert refused.status_code == 400, (name, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "BODY_NOT_INSPECTABLE", name
        assert "not strict JSON" in error["message"], name
    assert arrived(upstream, marker) == [], "a body the rules could not read reached the target"


def test_proxies_without_body_rules_still_stream_large_uploads(api, upstream, gateway):
    body_rule_proxy(api, upstream, gateway)  # another proxy on the same data plane has them
    plain = Setup(api, upstream)
    plain.rule(f"proxies/{plain.id}", {"effect": "deny", "pathPattern": "^/never"})
    marker = uuid.uuid4().hex
    big = json.dumps({"model": "gpt-4o", "pad": "z" * (3 * 1024 * 1024)}).encode()
    for data in (big, chunked(big)):
        answered = served(
            gateway, f"/api/{plain.id}/upload?m={marker}", 200, headers=AUTH, data=data
        )
        assert answered.status_code == 200, answered.text
    received = upstream.wait_for(len(upstream.received))
    assert [r.body == big for r in received if marker in r.query] == [True, True]


def test_a_request_the_body_rules_deny_is_not_counted_by_the_rate_limit(api, upstream, gateway):
    limit = 20
    made = Setup(api, upstream, proxyMaxRequestsPerMinute=limit)
    path = f"/api/{made.id}/v1/chat"
    made.rule(
        f"proxies/{made.id}",
        {"effect": "deny", "bodyChecks": [{"path": "model", "valuePattern": "^gpt-4o"}]},
    )
    # Until the data plane applies the rule, probes pass and count: note how many did.
    deadline, counted = time.monotonic() + DEADLINE_S, 0
    while True:
        probe = call(gateway, "POST", path, headers=AUTH, data=b'{"model": "gpt-4o"}')
        if probe.status_code == 403 or time.monotonic() > deadline:
            break
        counted += probe.status_code == 200
        time.sleep(0.05)  # polling a real process for the snapshot, bounded by the deadline
    assert probe.status_code == 403, probe.text
    for _ in range(5):
        refused = call(gateway, "POST", path, headers=AUTH, data=b'{"model": "gpt-4o"}')
        assert refused.status_code == 403, refused.text
        assert "RateLimit" not in refused.headers
    # Denied requests counted nothing: what the probes left of the minute is all there.
    left = limit - counted
    assert left > 0, "the rule took the whole minute's limit to apply"
    statuses = [
        call(gateway, "POST", path, headers=AUTH, data=b'{"model": "small"}').status_code
        for _ in range(left + 1)
    ]
    assert statuses == [200] * left + [429]


def test_http2_callers_get_the_same_body_decisions(api, upstream, gateway):
    """Over HTTP/2 (TLS with ALPN h2 on the same listener) a body has no chunked framing:
    DATA frames without a length; the same rules, bound and sink apply."""
    made = body_rule_proxy(api, upstream, gateway)
    marker = uuid.uuid4().hex
    port = gateway.base_url.rsplit(":", 1)[1]
    url = f"https://127.0.0.1:{port}/api/{made.id}/v1/chat?m={marker}"
    big = json.dumps({"model": "small", "pad": "x" * (2 * 1024 * 1024)}).encode()
    with h2_client() as client:
        denied = client.post(url, headers=AUTH, content=b'{"model": "gpt-4o"}')
        assert denied.http_version == "HTTP/2"
        assert denied.status_code == 403, denied.text
        for name, content in (("announced", big), ("unannounced", iter(chunked(big)))):
            refused = client.post(url, headers=AUTH, content=content)
            assert refused.status_code == 413, (name, refused.text)
            assert refused.json()["error"]["code"] == "REQUEST_BODY_TOO_LARGE", name
        allowed = client.post(url, headers=AUTH, content=iter([b'{"model":', b' "small"}']))
        assert allowed.status_code == 200, allowed.text
    received = upstream.wait_for(len(upstream.received))
    assert [r.body for r in received if marker in r.query] == [b'{"model": "small"}']


def test_a_body_checked_request_still_gets_a_streamed_answer(api, gateway):
    """The body is read first; the answer is not held back for it: an SSE answer streams."""
    with StreamingTarget() as target:
        made = body_rule_proxy(api, target, gateway)
        path = f"/api/{made.id}/sse?n=3&gap=0.1"
        refused = call(gateway, "POST", path, headers=AUTH, data=b'{"model": "gpt-4o"}')
        assert refused.status_code == 403, refused.text
        answered = call(gateway, "POST", path, headers=AUTH, data=b'{"model": "small"}')
        assert answered.status_code == 200, answered.text
        assert answered.content.count(b"data:") == 3
        entry = logged(api, made, answered.headers["portcullis-request-id"])
        assert entry["proxyData"]["streamed"] is True
