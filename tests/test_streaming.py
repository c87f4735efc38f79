"""Streamed answers (issue 18 §1): a target's answer reaches the caller as it arrives.

One data plane for the module, with a 1 s read timeout, in front of a streaming
target (tests/stream_support.py) whose events carry the time they were sent.
"""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import time

import httpx
import pytest

from tests.proxy_support import CALLER_KEY, Setup, logged, start_proxy, wait_until_served
from tests.stream_support import StreamingTarget
from tests.support import Api, create

AUTH = {"X-API-Key": CALLER_KEY}
MB = 1024 * 1024
TIMEOUT_MS = 1000  # the read timeout: the SSE stream below lasts longer, each gap shorter
SMALL_LIMIT = 100_000
FILTER = {"action": "destroy", "paths": ["secret"]}


@pytest.fixture(scope="module")
def target():
    with StreamingTarget() as running:
        yield running


@pytest.fixture(scope="module")
def stream_gateway(admin_server, tmp_path_factory):
    proxy = start_proxy(
        admin_server,
        tmp_path_factory.mktemp("streaming"),
        "--set",
        f"portcullis_target_timeout_ms={TIMEOUT_MS}",
    )
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def mapi(admin_server, owner) -> Api:
    return Api(admin_server.base_url, owner.token)


@pytest.fixture(scope="module")
def proxies(mapi, target, stream_gateway) -> dict[str, Setup]:
    """Proxies to the streaming target: the gateway's limit (6 MB), none, and a small one."""
    made = {
        "default": Setup(mapi, target),
        "unlimited": Setup(mapi, target, proxyMaxResponseBytes=0),
        "small": Setup(mapi, target, proxyMaxResponseBytes=SMALL_LIMIT),
    }
    for setup in made.values():
        wait_until_served(stream_gateway, f"/api/{setup.id}/once", AUTH)
    return made


class H2Only(ssl.SSLContext):
    """A client context offering ALPN `h2` alone (httpx offers http/1.1 first, and mitmproxy
    follows the client's order); mitmproxy's certificate is not checked."""

    def set_alpn_protocols(self, protocols) -> None:
        super().set_alpn_protocols(["h2"])


def h2_client() -> httpx.Client:
    context = H2Only(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return httpx.Client(http2=True, verify=context, timeout=15)


def read_events(response: httpx.Response) -> list[tuple[dict, float]]:
    """Each SSE event's data and the time its last byte arrived."""
    events, buffer = [], b""
    for data in response.iter_raw():
        now = time.time()
        buffer += data
        while b"\n\n" in buffer:
            raw, buffer = buffer.split(b"\n\n", 1)
            events.append((json.loads(raw.removeprefix(b"data: ")), now))
    return events


def log_of(mapi, setup, response) -> dict:
    return logged(mapi, setup, response.headers["portcullis-request-id"])["proxyData"]


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_sse_events_reach_the_caller_as_the_target_sends_them(mapi, stream_gateway, proxies, http2):
    setup = proxies["default"]
    port = stream_gateway.base_url.rsplit(":", 1)[1]
    # HTTP/2 from the caller: TLS to the same listener (mitmproxy's own certificate).
    base = f"https://127.0.0.1:{port}" if http2 else stream_gateway.base_url
    url = f"{base}/api/{setup.id}/sse?n=5&gap=0.3"
    with (
        h2_client() if http2 else httpx.Client(timeout=15) as client,
        client.stream("GET", url, headers=AUTH) as r,
    ):
        assert r.status_code == 200
        assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        events = read_events(r)
        headers = r.headers
    assert [data["i"] for data, _ in events] == [0, 1, 2, 3, 4]
    first, first_at = events[0]
    assert first_at - first["sent"] < 0.1  # within 100 ms of the target sending it
    for (_, received_at), (later, _) in itertools.pairwise(events):
        assert received_at < later["sent"]  # each event before the target sent the next
    # 5 events 0.3 s apart outlive the 1 s read timeout: it is per read, not in total.
    assert events[-1][0]["sent"] - first["sent"] > TIMEOUT_MS / 1000
    assert headers["content-type"] == "text/event-stream"
    assert headers["requestrocket-proxy-code"] == "proxy-access-granted"
    assert "aiohttp" not in headers.get("server", "") and "mitmproxy" not in headers.get(
        "server", ""
    )  # the target's head, never the bridge's
    logged_entry = logged(mapi, setup, headers["portcullis-request-id"])
    entry = logged_entry["proxyData"]
    sent = sum(len(f"data: {json.dumps(data)}\n\n") for data, _ in events)
    assert entry["streamed"] is True and entry["responseBytes"] == sent
    # Logged once the stream ended: its duration covers every event (both legs).
    lasted = events[-1][0]["sent"] - first["sent"]
    assert entry["duration"] >= lasted and logged_entry["targetData"]["duration"] >= lasted
    assert entry["proxyCode"] == "proxy-access-granted" and "streamOutcome" not in entry


def test_a_50_mb_download_streams_whole_in_bounded_memory(mapi, stream_gateway, proxies):
    setup = proxies["unlimited"]
    before = memory_kb(stream_gateway.process.pid, "VmRSS")
    received = 0
    url = f"{stream_gateway.base_url}/api/{setup.id}/chunked?total={50 * MB}"
    with httpx.stream("GET", url, headers=AUTH, timeout=30) as response:
        assert response.status_code == 200
        for data in response.iter_raw():
            received += len(data)
    peak = memory_kb(stream_gateway.process.pid, "VmHWM")
    assert received == 50 * MB
    assert peak - before < 20 * 1024, f"RSS grew by {(peak - before) // 1024} MB"
    entry = log_of(mapi, setup, response)
    assert entry["streamed"] is True and entry["responseBytes"] == 50 * MB


def memory_kb(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_a_stream_past_the_limit_is_cut_and_an_announced_one_refused(mapi, stream_gateway, proxies):
    base = stream_gateway.base_url
    for name, limit, size in (("default", 6 * MB, 7 * MB), ("small", SMALL_LIMIT, 200_000)):
        setup = proxies[name]
        received = 0
        url = f"{base}/api/{setup.id}/chunked?total={size}"
        with (
            pytest.raises(httpx.RemoteProtocolError),  # never a clean end
            httpx.stream("GET", url, headers=AUTH, timeout=15) as response,
        ):
            assert response.status_code == 200
            for data in response.iter_raw():
                received += len(data)
        assert received <= limit
        entry = log_of(mapi, setup, response)
        assert entry["proxyCode"] == entry["streamOutcome"] == "response-too-large"
        assert entry["streamed"] is True and entry["responseBytes"] <= limit
        assert "size limit" in entry["message"]
        # Announced over the limit: 413 before anything is sent.
        refused = httpx.get(f"{base}/api/{setup.id}/once?size={size}", headers=AUTH, timeout=15)
        assert refused.status_code == 413
        assert refused.headers["requestrocket-proxy-code"] == "response-too-large"
        assert refused.json()["error"] == "Payload Too Large"
    # No limit for this proxy: an announced 7 MB passes.
    whole = httpx.get(
        f"{base}/api/{proxies['unlimited'].id}/once?size={7 * MB}", headers=AUTH, timeout=15
    )
    assert whole.status_code == 200 and len(whole.content) == 7 * MB


def test_a_cut_over_http2_resets_the_stream(stream_gateway, proxies):
    port = stream_gateway.base_url.rsplit(":", 1)[1]
    url = f"https://127.0.0.1:{port}/api/{proxies['small'].id}/chunked?total=200000"
    with h2_client() as client, pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117
        with client.stream("GET", url, headers=AUTH) as response:
            assert response.http_version == "HTTP/2"
            for _ in response.iter_raw():
                pass


def test_a_caller_leaving_mid_stream_closes_the_targets_connection(
    mapi, target, stream_gateway, proxies
):
    setup = proxies["default"]
    port = int(stream_gateway.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=15) as caller:
        caller.sendall(
            f"GET /api/{setup.id}/hold?id=leaving HTTP/1.1\r\nHost: gw\r\n"
            f"X-API-Key: {CALLER_KEY}\r\n\r\n".encode()
        )
        seen = b""
        while b"\n\n" not in seen.partition(b"\r\n\r\n")[2]:
            data = caller.recv(65536)
            assert data, "the gateway closed the connection before the first event"
            seen += data
        assert seen.startswith(b"HTTP/1.1 200")
        request_id = next(
            line.split(b":", 1)[1].strip().decode()
            for line in seen.split(b"\r\n")
            if line.lower().startswith(b"portcullis-request-id:")
        )
    left_at = time.time()
    closed_at = target.closed_at("leaving")
    assert closed_at is not None and closed_at - left_at < 1.0
    entry = logged(mapi, setup, request_id)["proxyData"]
    assert entry["streamed"] is True and entry["streamOutcome"] == "caller-disconnected"
    # The same over HTTP/2: the caller's connection closes with the stream open.
    url = f"https://127.0.0.1:{port}/api/{setup.id}/hold?id=leaving-h2"
    with h2_client() as client, client.stream("GET", url, headers=AUTH) as response:
        assert response.http_version == "HTTP/2"
        next(response.iter_raw())
        client.close()
        left_at = time.time()
    closed_at = target.closed_at("leaving-h2")
    assert closed_at is not None and closed_at - left_at < 1.0


def test_a_failure_settling_a_streamed_head_answers_500_and_lets_the_target_go(
    admin_server, target, proxies, tmp_path
):
    broken = start_proxy(admin_server, tmp_path, "-s", "tests/fault_injection_stream.py")
    try:
        setup = proxies["default"]
        wait_until_served(broken, f"/api/{setup.id}/once", AUTH)
        url = f"{broken.base_url}/api/{setup.id}/hold?id=broken-head"
        response = httpx.get(url, headers=AUTH, timeout=15)
        assert response.status_code == 500, response.text
        assert response.json()["error"]["code"] == "INTERNAL_ERROR"  # whole, not cut
        assert response.headers["requestrocket-proxy-code"] == "gateway-error"
        assert target.closed_at("broken-head") is not None  # not read on for nothing
        assert "injected fault" in broken.log_text()
    finally:
        broken.stop()


def test_a_stalled_stream_is_cut_after_the_read_timeout(mapi, target, stream_gateway, proxies):
    setup = proxies["default"]
    url = f"{stream_gateway.base_url}/api/{setup.id}/stall?gap=5&id=stalled"
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", url, headers=AUTH, timeout=15) as response,
    ):
        assert response.status_code == 200
        for _ in response.iter_raw():
            pass
    entry = log_of(mapi, setup, response)
    assert entry["proxyCode"] == entry["streamOutcome"] == "target-timeout"
    assert target.closed_at("stalled") is not None  # the gateway let go of the target too


def test_an_answer_complete_at_once_is_buffered_with_its_length(mapi, stream_gateway, proxies):
    setup = proxies["default"]
    response = httpx.get(
        f"{stream_gateway.base_url}/api/{setup.id}/once?size=1000", headers=AUTH, timeout=15
    )
    assert response.status_code == 200 and response.content == b"o" * 1000
    assert response.headers["content-length"] == "1000"
    entry = log_of(mapi, setup, response)
    assert entry["streamed"] is False and entry["responseBytes"] == 1000


def test_a_streamed_upload_gets_a_streamed_answer(mapi, stream_gateway, proxies):
    setup = proxies["default"]
    body = b"u" * (3 * MB)  # past stream_large_bodies: the body goes through the bridge too
    url = f"{stream_gateway.base_url}/api/{setup.id}/sse?n=3&gap=0.3"
    with httpx.stream("POST", url, headers=AUTH, content=body, timeout=15) as response:
        assert response.status_code == 200
        events = read_events(response)
    assert [data["i"] for data, _ in events] == [0, 1, 2]
    assert events[0][1] < events[-1][0]["sent"]
    entry = log_of(mapi, setup, response)
    assert entry["streamed"] is True and entry["proxyCode"] == "proxy-access-granted"


def test_http2_uploads_without_a_length_are_streamed_or_refused(target, stream_gateway, proxies):
    """HTTP/2 bodies need no Content-Length: past stream_large_bodies they are streamed to
    the target (and their answer streams back), or drained and refused, never lost."""
    setup = proxies["default"]
    port = stream_gateway.base_url.rsplit(":", 1)[1]
    url = f"https://127.0.0.1:{port}/api/{setup.id}/sse?n=2&gap=0.1&id=h2-upload"

    def body():
        for _ in range(4):
            yield b"u" * (512 * 1024)  # 2 MB in all, no length announced

    with h2_client() as client:
        with client.stream("POST", url, headers=AUTH, content=body()) as response:
            assert response.http_version == "HTTP/2" and response.status_code == 200
            assert [data["i"] for data, _ in read_events(response)] == [0, 1]
        assert target.received["h2-upload"] == 2 * MB
        refused = client.post(url, headers={"X-API-Key": "wrong"}, content=body())
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "UNAUTHORIZED"
        assert client.get(url, headers={"X-API-Key": "wrong"}).status_code == 401


def test_an_answer_the_payload_filters_apply_to_never_streams_past_them(
    mapi, target, stream_gateway
):
    """Filters need the whole body: a streaming answer is buffered for them (and an SSE
    stream, not JSON, is refused whole: nothing of it reaches the caller)."""
    setup = Setup(mapi, target)
    create(mapi, f"{setup.base}/proxies/{setup.id}/filters", FILTER, "filters")
    path = f"/api/{setup.id}/sse?n=2&gap=0.1"
    response = wait_until_served(stream_gateway, path, AUTH, lambda r: r.status_code == 422)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "RESPONSE_NOT_JSON"
    assert b"sent" not in response.content
    entry = log_of(mapi, setup, response)
    assert entry["streamed"] is False and entry["proxyCode"] == "response-filter-refused"
