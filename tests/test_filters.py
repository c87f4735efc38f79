"""Payload filters on a real data plane: real admin, real mitmdump, real upstream.

Filters at the four scopes apply to 2xx JSON answers in the order target credential →
target → proxy credential → proxy; a non-JSON 2xx answer with filters becomes 422 and
is never passed on; proxies without filters get their answers byte for byte; gzip is
decoded (never past the response size limit); async deliveries store the filtered
answer. The upstream's `/mirror/...` answers with the request body, so each test says
what the target returns.

The module has a store of its own (every proxy process on a store dispatches async
jobs) and a gateway with a 512 KiB response size limit.
"""

from __future__ import annotations

import gzip
import json
import time

import pytest
import requests

from tests.async_support import AUTH, schedule, submit, user_api, wait_for_job
from tests.proxy_support import PROPAGATION_TIMEOUT_S, Setup, call, logged, start_proxy
from tests.support import assert_error, create, start_admin

LIMIT = 512 * 1024
ORDER = {
    "id": "ord_1",
    "name": "Order one",
    "card": {"number": "4111111111111111", "brand": "visa"},
    "items": [{"sku": "A-1", "price": 3}, {"sku": "B-2", "price": 5, "meta": {"x": 1}}],
    "secret": "s3cr3t",
}
COMBINED = {"id": "ord_1", "name": "Order one", "items": [{"sku": "A-1"}, {"sku": "B-2"}]}


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory):
    server = start_admin(tmp_path_factory.mktemp("filters-admin"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(admin_server):
    return user_api(admin_server)


@pytest.fixture(scope="module")
def gateway(admin_server, tmp_path_factory):
    args = schedule(portcullis_max_response_bytes=LIMIT)
    proxy = start_proxy(admin_server, tmp_path_factory.mktemp("filters-proxy"), *args)
    yield proxy
    proxy.stop()


def scope_path(made: Setup, scope: str) -> str:
    parent = {
        "targetCredential": f"credentials/{made.target_cred['sKey']}",
        "target": f"targets/{made.target['sKey']}",
        "proxyCredential": f"credentials/{made.caller['sKey']}",
        "proxy": f"proxies/{made.id}",
    }[scope]
    return f"{made.base}/{parent}/filters"


def add_filter(made: Setup, scope: str, action: str, *paths: str) -> dict:
    body = {"action": action, "paths": list(paths)}
    return create(made.api, scope_path(made, scope), body, "filters")


def mirror(gateway, made: Setup, body: bytes | dict, query: str = "", **kwargs):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return call(
        gateway, "POST", f"/api/{made.id}/mirror/x{query}", headers=AUTH, data=data, **kwargs
    )


def poll_until(check, what: str):
    """Poll the gateway until `check()` returns a truthy answer (the new configuration is
    served), bounded by the propagation deadline; the answer is returned."""
    deadline = time.monotonic() + PROPAGATION_TIMEOUT_S
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            assert answer, f"the gateway never served {what}"
            return answer
        time.sleep(0.05)  # polling a real process for a config change, bounded by the deadline


def served_filtered(gateway, made: Setup, expected) -> requests.Response:
    """Wait until the gateway answers ORDER with `expected` (all filters picked up)."""

    def check():
        response = mirror(gateway, made, ORDER)
        return response if response.status_code == 200 and response.json() == expected else None

    return poll_until(check, f"the filtered answer {expected}")


def test_destroy_and_retain_at_two_scopes_give_the_combined_result(api, upstream, gateway):
    made = Setup(api, upstream)
    add_filter(made, "target", "destroy", "card.number")
    add_filter(made, "proxy", "retain", "id", "name", "items.*.sku")
    response = served_filtered(gateway, made, COMBINED)
    assert response.headers["Content-Length"] == str(len(response.content))
    assert json.loads(response.content) == COMBINED
    assert b"4111" not in response.content and b"s3cr3t" not in response.content
    assert response.headers["requestrocket-proxy-code"] == "proxy-access-granted"
    assert "Content-Encoding" not in response.headers
    # The request log has the 200 the caller got.
    entry = logged(api, made, response.headers["portcullis-request-id"])
    assert entry["statusCode"] == 200, entry


def test_the_four_scopes_apply_in_their_fixed_order(api, upstream, gateway):
    """Each stage feeds the next: a field destroyed first cannot be retained later, and a
    later stage only sees what earlier ones kept."""
    made = Setup(api, upstream)
    add_filter(made, "proxy", "destroy", "items.*.price")  # stage 4, created first
    add_filter(made, "proxyCredential", "retain", "id", "card", "items")  # stage 3
    add_filter(made, "target", "destroy", "items.1")  # stage 2
    add_filter(made, "targetCredential", "destroy", "card.number")  # stage 1
    expected = {"id": "ord_1", "card": {"brand": "visa"}, "items": [{"sku": "A-1"}]}
    served_filtered(gateway, made, expected)


def test_a_non_json_answer_with_filters_is_422_and_never_passed_on(api, upstream, gateway):
    made = Setup(api, upstream)
    add_filter(made, "targetCredential", "destroy", "secret")
    served_filtered(gateway, made, {k: v for k, v in ORDER.items() if k != "secret"})
    for body, query in (
        (b"<html>s3cr3t</html>", "?content_type=text/html"),
        (b'{"secret": "s3cr3t"', ""),  # says JSON, is not
        (b"s3cr3t", "?content_type=application/json"),
        ('{"secret": "s3cr3t\udc80"}'.encode("utf-8", "surrogatepass"), ""),  # not UTF-8
        (b"[" * 100 + b"]" * 100, ""),  # deeper than the JSON nesting limit
    ):
        response = mirror(gateway, made, body, query)
        error = assert_error(response, 422, "RESPONSE_NOT_JSON")
        assert b"s3cr3t" not in response.content
        assert "payload filters" in error["message"]
        assert response.headers["requestrocket-proxy-code"] == "response-filter-refused"
        assert response.headers["portcullis-request-id"]
    entry = logged(api, made, response.headers["portcullis-request-id"])
    assert entry["statusCode"] == 422, entry


def test_without_filters_answers_are_unchanged_byte_for_byte(api, upstream, gateway):
    made = Setup(api, upstream)
    odd = b'{ "b" : 1,\n  "a": [1, 2.50, 1e2], "u": "\\u00e9" }'
    for body, query, encoding in (
        (odd, "", None),
        (b"<html>plain</html>", "?content_type=text/html", None),
        (odd, "?encoding=gzip", "gzip"),
        (odd, "?encoding=br", "br"),
    ):
        response = poll_until(
            lambda body=body, query=query: (
                r
                if (r := mirror(gateway, made, body, query, stream=True)).status_code == 200
                else None
            ),
            "the new proxy",
        )
        raw = response.raw.read(decode_content=False)
        sent = gzip.compress(body) if encoding == "gzip" else body
        assert gzip.decompress(raw) == body if encoding == "gzip" else raw == sent
        assert response.headers.get("Content-Encoding") == encoding


def test_non_2xx_answers_pass_unfiltered(api, upstream, gateway):
    made = Setup(api, upstream)
    add_filter(made, "proxy", "destroy", "status")
    served_filtered(gateway, made, {k: v for k, v in ORDER.items() if k != "status"})
    response = call(gateway, "GET", f"/api/{made.id}/status/404", headers=AUTH)
    assert response.status_code == 404 and response.json() == {"status": 404}
    assert call(gateway, "GET", f"/api/{made.id}/status/204", headers=AUTH).status_code == 204


def test_gzip_answers_are_decoded_filtered_and_sent_plain(api, upstream, gateway):
    made = Setup(api, upstream)
    add_filter(made, "target", "destroy", "card.number", "secret")
    expected = {k: v for k, v in ORDER.items() if k != "secret"}
    expected["card"] = {"brand": "visa"}
    served_filtered(gateway, made, expected)
    for encoding in ("gzip", "deflate"):
        response = mirror(gateway, made, ORDER, f"?encoding={encoding}", stream=True)
        raw = response.raw.read(decode_content=False)
        assert response.status_code == 200
        assert "Content-Encoding" not in response.headers
        assert response.headers["Content-Length"] == str(len(raw))
        assert json.loads(raw) == expected
    # An encoding the gateway cannot read is refused, not passed on.
    response = mirror(gateway, made, ORDER, "?encoding=br")
    assert_error(response, 502, "RESPONSE_ENCODING_UNSUPPORTED")
    assert b"s3cr3t" not in response.content and b"4111" not in response.content


def test_filtering_never_reads_past_the_response_size_limit(api, upstream, gateway):
    made = Setup(api, upstream)
    add_filter(made, "proxy", "retain", "id")
    served_filtered(gateway, made, {"id": "ord_1"})
    # Compressed it is small; decoded it is over the limit: 413, never inflated whole.
    bomb = json.dumps({"id": "big", "pad": "0" * (LIMIT + 1024)}).encode()
    response = mirror(gateway, made, bomb, "?encoding=gzip")
    assert response.status_code == 413, response.text
    assert response.headers["requestrocket-proxy-code"] == "response-too-large"
    # A large answer within the limit is filtered (off the event loop) like a small one.
    large = {"id": "large", "pad": "0" * (LIMIT - 1024)}
    response = mirror(gateway, made, large)
    assert response.status_code == 200 and response.json() == {"id": "large"}


def test_changes_to_filters_reach_the_gateway(api, upstream, gateway):
    made = Setup(api, upstream)
    created = add_filter(made, "proxy", "retain", "id")
    served_filtered(gateway, made, {"id": "ord_1"})
    item = f"{scope_path(made, 'proxy')}/{created['filterId']}"
    assert api.put(item, json={"paths": ["name"]}).status_code == 200
    served_filtered(gateway, made, {"name": "Order one"})
    assert api.delete(item).status_code == 200
    served_filtered(gateway, made, ORDER)


def test_async_deliveries_store_the_filtered_answer(api, upstream, gateway):
    made = Setup(api, upstream)
    add_filter(made, "targetCredential", "destroy", "card.number")
    add_filter(made, "proxy", "retain", "id", "name", "items.*.sku")
    served_filtered(gateway, made, COMBINED)

    accepted = submit(gateway, made, "/mirror/x", data=json.dumps(ORDER).encode())
    assert accepted.status_code == 202, accepted.text
    job = wait_for_job(api, made, accepted.json()["requestId"], lambda j: j["response"])
    assert job["status"] == "succeeded", job
    assert job["response"]["status"] == 200
    assert json.loads(job["response"]["body"]) == COMBINED

    refused = submit(gateway, made, "/mirror/x?content_type=text/plain", data=b"s3cr3t")
    assert refused.status_code == 202, refused.text
    job = wait_for_job(api, made, refused.json()["requestId"], lambda j: j["response"])
    assert job["status"] == "failed" and job["response"]["status"] == 422, job
    assert "s3cr3t" not in json.dumps(job["response"])  # the request body may hold it


def test_answers_to_streamed_request_bodies_are_filtered_too(api, upstream, gateway):
    """A request body past `stream_large_bodies` goes through the stream bridge; its answer
    is settled there and must be filtered all the same."""
    made = Setup(api, upstream)
    add_filter(made, "proxy", "destroy", "status", "secret")
    served_filtered(gateway, made, {k: v for k, v in ORDER.items() if k != "secret"})

    def big_body():
        yield b"a" * (2 * 1024 * 1024)  # past stream_large_bodies (1 MB), chunked

    response = call(gateway, "POST", f"/api/{made.id}/status/200", headers=AUTH, data=big_body())
    assert response.status_code == 200 and response.json() == {}, response.text
    response = call(gateway, "POST", f"/api/{made.id}/bytes/16", headers=AUTH, data=big_body())
    assert_error(response, 422, "RESPONSE_NOT_JSON")
