"""What callers get when a target fails them: JSON 502, 504 and 413, buffered and streamed.

Also what the upstream leg never does on its own: follow redirects or carry
cookies from one caller to the next.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests

from tests.proxy_support import (
    CALLER_KEY,
    Setup,
    call,
    free_port,
    logged,
    served_setup,
    start_proxy,
    wait_until_served,
)
from tests.support import Api

AUTH = {"X-API-Key": CALLER_KEY}
STREAMED_BODY = b"z" * (3 * 1024 * 1024)  # above run_proxy's stream_large_bodies (1 MB)
TIMEOUT_MS = 300


def assert_gateway_error(response, status: int, proxy_code: str, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["requestrocket-proxy-code"] == proxy_code
    assert response.headers["portcullis-request-id"]
    assert response.json()["error"]["code"] == code


@pytest.fixture(scope="module")
def setup(admin_server, owner, upstream, gateway) -> Setup:
    """One proxy for every test here: none changes it, and each counts the target's
    requests from its own start."""
    return served_setup(Api(admin_server.base_url, owner.token), upstream, gateway)


@pytest.fixture(scope="module")
def impatient_gateway(admin_server, tmp_path_factory):
    """A data plane that waits only TIMEOUT_MS for targets to answer."""
    proxy = start_proxy(
        admin_server,
        tmp_path_factory.mktemp("impatient"),
        "--set",
        f"portcullis_target_timeout_ms={TIMEOUT_MS}",
    )
    yield proxy
    proxy.stop()


@pytest.fixture
def dead_target(api, gateway):
    """A proxy whose target is a closed port on 127.0.0.1."""
    made = Setup(api, SimpleNamespace(base_url=f"http://127.0.0.1:{free_port()}"))
    wait_until_served(gateway, f"/api/{made.id}/", AUTH)
    return made


@pytest.mark.parametrize("body", [None, STREAMED_BODY], ids=["buffered", "streamed"])
def test_an_unreachable_target_is_a_json_502(gateway, dead_target, body):
    response = call(gateway, "POST", f"/api/{dead_target.id}/x", headers=AUTH, data=body)
    assert_gateway_error(response, 502, "target-unreachable", "TARGET_UNREACHABLE")
    assert "could not connect" in response.json()["message"]


@pytest.mark.parametrize("body", [None, STREAMED_BODY], ids=["buffered", "streamed"])
def test_a_target_slower_than_the_timeout_is_a_json_504(api, upstream, impatient_gateway, body):
    made = Setup(api, upstream)
    wait_until_served(impatient_gateway, f"/api/{made.id}/", AUTH)
    before = len(upstream.received)
    response = call(
        impatient_gateway, "POST", f"/api/{made.id}/delay/3000", headers=AUTH, data=body
    )
    assert_gateway_error(response, 504, "target-timeout", "TARGET_TIMEOUT")
    assert "did not answer within 0.3s" in response.json()["message"]
    received = upstream.wait_for(before + 1)[-1]
    assert received.path == "/base/delay/3000" and received.body == (body or b"")


def test_a_target_within_the_timeout_is_answered(api, upstream, impatient_gateway):
    made = Setup(api, upstream)
    ok = wait_until_served(impatient_gateway, f"/api/{made.id}/delay/10", AUTH)
    assert ok.status_code == 200 and ok.json() == {"delayed": True}


def test_a_response_announced_over_the_limit_is_413_and_a_chunked_one_is_cut(api, setup, gateway):
    response = call(gateway, "GET", f"/api/{setup.id}/bytes/{7 * 1024 * 1024}", headers=AUTH)
    assert response.status_code == 413
    assert response.headers["requestrocket-proxy-code"] == "response-too-large"
    body = response.json()
    assert body["error"] == "Payload Too Large" and body["limit"] == "6 MB"
    assert body["responseSize"] == "7 MB"
    # Without a length the answer streams: it is cut at the limit, never a clean end
    # (tests/test_streaming.py has the rest).
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        call(gateway, "GET", f"/api/{setup.id}/chunked/{7 * 1024 * 1024}", headers=AUTH)


def test_a_chunked_response_under_the_limit_passes_whole(setup, gateway):
    response = call(gateway, "GET", f"/api/{setup.id}/chunked/{200 * 1024}", headers=AUTH)
    assert response.status_code == 200
    assert response.content == b"x" * (200 * 1024)
    assert response.headers["requestrocket-proxy-code"] == "proxy-access-granted"


def test_redirects_go_back_to_the_caller_unfollowed(setup, gateway, upstream):
    before = len(upstream.received)
    response = call(
        gateway,
        "GET",
        f"/api/{setup.id}/status/302?header=Location:/base/elsewhere",
        headers=AUTH,
        allow_redirects=False,
    )
    assert response.status_code == 302
    assert response.headers["location"] == "/base/elsewhere"
    assert len(upstream.wait_for(before + 1)) == before + 1


def test_cookies_set_by_a_target_are_never_sent_by_the_gateway(setup, gateway, upstream):
    call(gateway, "GET", f"/api/{setup.id}/status/200?header=Set-Cookie:sid=abc", headers=AUTH)
    before = len(upstream.received)
    call(gateway, "GET", f"/api/{setup.id}/echo", headers=AUTH)
    received = upstream.wait_for(before + 1)[-1]
    assert [v for k, v in received.headers if k.lower() == "cookie"] == []


def test_response_headers_and_statuses_pass_through(setup, gateway):
    response = call(
        gateway,
        "GET",
        f"/api/{setup.id}/status/418?header=X-Upstream:yes&header=Set-Cookie:a=1",
        headers=AUTH,
    )
    assert response.status_code == 418 and response.json() == {"status": 418}
    assert response.headers["x-upstream"] == "yes" and response.headers["set-cookie"] == "a=1"
    assert response.headers["requestrocket-proxy-code"] == "proxy-access-granted"


def test_failed_deliveries_are_logged_with_what_reached_the_target(
    api, upstream, dead_target, gateway, impatient_gateway
):
    unreachable = call(gateway, "GET", f"/api/{dead_target.id}/x", headers=AUTH)
    slow = Setup(api, upstream)
    wait_until_served(impatient_gateway, f"/api/{slow.id}/", AUTH)
    timed_out = call(impatient_gateway, "GET", f"/api/{slow.id}/delay/3000", headers=AUTH)

    for made, response, reached in ((dead_target, unreachable, False), (slow, timed_out, True)):
        request_id = response.headers["portcullis-request-id"]
        entry = logged(api, made, request_id)
        assert entry["proxyData"]["status"] == response.status_code
        assert entry["validationData"]["requestSent"] is reached
        assert entry["validationData"]["responseReceived"] is False
        if reached:
            assert entry["targetData"]["status"] is None
            assert entry["targetData"]["location"] == "127.0.0.1"
        else:
            assert entry["targetData"] is None
