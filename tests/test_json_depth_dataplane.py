"""JSON bodies on the data plane: additional data is merged into JSON objects or the caller
gets a 400, never a 500; deep bodies are forwarded untouched where nothing is merged, and
the request log keeps no body it cannot redact."""

from __future__ import annotations

import json
import uuid

import pytest

from models.json_limits import MAX_DEPTH
from models.redaction import TOO_DEEP
from tests.proxy_support import CALLER_KEY, Setup, call, logged, wait_until_served
from tests.support import Api

AUTH = {"X-API-Key": CALLER_KEY}
JSON = {**AUTH, "Content-Type": "application/json"}
DEEP = 10_000


def deep_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# Bodies that start like a JSON object but that the gateway cannot parse.
UNMERGEABLE = {
    "deep-array-inside": '{"user": "caller", "x": ' + deep_array(DEEP) + "}",
    "deep-objects": deep_object(DEEP),
    "one-level-too-deep": '{"user": "caller", "x": ' + deep_array(MAX_DEPTH) + "}",
    "unclosed": '{"user": "caller", "x": ' + "[" * DEEP,
    "nan": '{"user": "caller", "n": NaN}',
    "huge-number": '{"user": "caller", "n": 1e400}',
    "trailing-comma": '{"user": "caller",}',
    "lone-surrogate": '{"user": "caller\\ud800"}',
    "padded": " \r\n\t" * 1000 + '{"user": "caller", "n": Infinity}',
}


@pytest.fixture(scope="module")
def merging(api_module, upstream, gateway) -> Setup:
    made = Setup(api_module, upstream, proxyAdditionalData={"user": "gateway"})
    wait_until_served(gateway, f"/api/{made.id}/", AUTH)
    return made


@pytest.fixture(scope="module")
def plain(api_module, upstream, gateway) -> Setup:
    made = Setup(api_module, upstream)
    wait_until_served(gateway, f"/api/{made.id}/", AUTH)
    return made


@pytest.fixture(scope="module")
def api_module(admin_server, owner) -> Api:
    return Api(admin_server.base_url, owner.token)


def reached(upstream, path: str) -> list:
    return [r for r in upstream.received if r.path == f"/base/{path}"]


@pytest.mark.parametrize("kind", ["api", "async"])
@pytest.mark.parametrize("name", UNMERGEABLE)
def test_bodies_that_cannot_take_the_additional_data_are_400_and_not_sent(
    merging, gateway, upstream, api_module, kind, name
):
    path = f"unmergeable/{uuid.uuid4().hex}"
    for method in ("POST", "PUT", "PATCH"):
        response = call(
            gateway, method, f"/{kind}/{merging.id}/{path}", headers=JSON, data=UNMERGEABLE[name]
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"]["code"] == "INVALID_JSON"
        assert body["message"] == body["error"]["message"]
        assert response.headers["requestrocket-proxy-code"] == "proxy-access-denied"
        assert response.headers["portcullis-request-id"]
        if "deep" in name or name == "unclosed":
            assert str(MAX_DEPTH) in body["message"]
    assert reached(upstream, path) == []
    entry = logged(api_module, merging, response.headers["portcullis-request-id"])
    assert entry["proxyData"]["status"] == 400
    assert entry["validationData"]["requestSent"] is False


def test_json_objects_up_to_the_limit_are_merged(merging, gateway, upstream):
    path = f"merged/{uuid.uuid4().hex}"
    inner = json.loads(deep_array(MAX_DEPTH - 1))
    for body in (
        json.dumps({"user": "caller", "x": inner}),
        "\ufeff" + json.dumps({"user": "caller"}),
    ):
        response = call(
            gateway, "POST", f"/api/{merging.id}/{path}", headers=JSON, data=body.encode()
        )
        assert response.status_code == 200, response.text
        assert json.loads(reached(upstream, path)[-1].body)["user"] == "gateway"


@pytest.mark.parametrize(
    "body",
    [deep_array(DEEP).encode(), b"[1, 2]", b"user=caller", b"\xff\xfe\x00binary", b'"text"'],
    ids=["deep-array", "array", "form", "binary", "string"],
)
def test_bodies_that_are_not_json_objects_are_forwarded_unchanged(merging, gateway, upstream, body):
    path = f"unmerged/{uuid.uuid4().hex}"
    response = call(gateway, "POST", f"/api/{merging.id}/{path}", headers=AUTH, data=body)
    assert response.status_code == 200, response.text
    assert reached(upstream, path)[-1].body == body


# Deep, yet within the 16 KiB of a body the request log keeps.
@pytest.mark.parametrize("body", [deep_array(2000), deep_object(2000)], ids=["arrays", "objects"])
def test_without_additional_data_deep_bodies_pass_and_the_log_keeps_no_copy(
    plain, gateway, upstream, api_module, body
):
    path = f"plain/{uuid.uuid4().hex}"
    response = call(gateway, "POST", f"/api/{plain.id}/{path}", headers=JSON, data=body)
    assert response.status_code == 200, response.text
    assert reached(upstream, path)[-1].body == body.encode()
    entry = logged(api_module, plain, response.headers["portcullis-request-id"])
    assert entry["requestBody"] == TOO_DEEP
    assert "Traceback" not in gateway.log_text()
