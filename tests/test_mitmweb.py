"""mitmweb (`run_proxy.py --web`): its flow list shows each flow's request id, proxy code and
deciding rule, refusals marked, and no secret is anywhere its API serves.

tests/test_flow_annotations.py reads the same flow objects back from `mitmdump -w`; this
runs mitmweb itself and reads what its web UI reads (`GET /flows`, each message's
`content.data`, `GET /flows/dump`), so a change to how the addons are dispatched or which
of mitmproxy's addons are loaded cannot lose the annotations unnoticed.
"""

from __future__ import annotations

import secrets
import time

import requests

from tests.proxy_support import (
    CALLER_KEY,
    TARGET_TOKEN,
    Setup,
    call,
    distinct_free_ports,
    start_proxy,
    wait_until_served,
)

QUERY_SECRET = "QUERY-SECRET-mitmweb-0001"
WRONG_KEY = "WRONG-KEY-mitmweb-0001"
WEB_TIMEOUT_S = 30


def web_get(web: str, path: str, password: str) -> requests.Response:
    """An authenticated call to mitmweb's API (its `web_password` as a bearer token)."""
    return requests.get(web + path, headers={"Authorization": f"Bearer {password}"}, timeout=10)


def flows_once_shown(web: str, password: str, request_ids: list[str]) -> requests.Response:
    """mitmweb's flow list once it holds a finished flow for each of `request_ids`."""
    deadline = time.monotonic() + WEB_TIMEOUT_S
    while True:
        try:
            answer = web_get(web, "/flows", password)
        except requests.ConnectionError:
            answer = None  # the web server is not listening yet
        if answer is not None and answer.status_code == 200:
            flows = answer.json()
            comments = " ".join(flow.get("comment", "") for flow in flows)
            if all(request_id in comments for request_id in request_ids):
                return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"mitmweb did not show {request_ids}: {answer and answer.text}")
        time.sleep(0.05)  # polling mitmweb for its view of the flows, bounded


def test_mitmweb_shows_annotations_and_no_secret(admin_server, api, upstream, tmp_path):
    in_header = Setup(api, upstream)  # bearer TARGET_TOKEN injected
    in_query = Setup(
        api,
        upstream,
        target={
            "credentialAuthType": "apiKey",
            "credentialSecret": {"value": QUERY_SECRET, "query": "key"},
        },
    )
    deny = in_header.rule(
        f"proxies/{in_header.id}", {"effect": "deny", "pathPattern": "^/v1/private"}
    )
    password = secrets.token_hex(16)
    proxy_port, web_port = distinct_free_ports(2)
    gateway = start_proxy(
        admin_server,
        tmp_path,
        "--web",
        "--set",
        f"web_port={web_port}",
        "--set",
        "web_host=127.0.0.1",
        "--set",
        "web_open_browser=false",
        "--set",
        f"web_password={password}",
        port=proxy_port,
    )
    web = f"http://127.0.0.1:{web_port}"
    try:
        auth = {"X-API-Key": CALLER_KEY}
        granted = [
            wait_until_served(gateway, f"/api/{made.id}/status/200?page=2", auth)
            for made in (in_header, in_query)
        ]
        denied = wait_until_served(
            gateway, f"/api/{in_header.id}/v1/private", auth, lambda r: r.status_code == 403
        )
        wrong = call(gateway, "GET", f"/api/{in_header.id}/x", headers={"X-API-Key": WRONG_KEY})
        answers = [*granted, denied, wrong]
        assert [r.status_code for r in answers] == [200, 200, 403, 401]
        ids = [r.headers["portcullis-request-id"] for r in answers]

        assert web_get(web, "/flows", "wrong-password").status_code == 403
        listed = flows_once_shown(web, password, ids)
        flows = listed.json()
        contents = [
            web_get(web, f"/flows/{flow['id']}/{message}/content.data", password)
            for flow in flows
            for message in ("request", "response")
            if flow.get(message)
        ]
        dump = web_get(web, "/flows/dump", password)
    finally:
        gateway.stop()

    by_id = {flow["comment"].split(" ")[1]: flow for flow in flows if flow.get("comment")}
    for answer in granted:
        flow = by_id[answer.headers["portcullis-request-id"]]
        assert flow["comment"].endswith(" · proxy-access-granted · rule default")
        assert flow["marked"] == ""
    # The injected credentials are where mitmweb shows them, blanked.
    header_flow, query_flow = by_id[ids[0]], by_id[ids[1]]
    sent = {name.lower(): value for name, value in header_flow["request"]["headers"]}
    assert sent["authorization"] == "[REDACTED]"
    assert sent.get("x-api-key", "[REDACTED]") == "[REDACTED]"  # not forwarded, or blanked
    assert "key=%5BREDACTED%5D" in query_flow["request"]["path"], query_flow["request"]
    refused = by_id[ids[2]]
    assert refused["comment"] == f"request {ids[2]} · proxy-access-denied · rule {deny['ruleId']}"
    assert refused["marked"], "a refusal is marked in the flow list"
    # A refused request is shown as the caller sent it, the caller's credential blanked.
    assert ["X-API-Key", "[REDACTED]"] in refused["request"]["headers"]
    unauthenticated = by_id[ids[3]]
    assert " · proxy-access-granted" not in unauthenticated["comment"]
    assert unauthenticated["marked"]

    assert all(c.status_code == 200 for c in contents) and dump.status_code == 200
    served = [listed.content, *(c.content for c in contents), dump.content]
    for secret in (CALLER_KEY, TARGET_TOKEN, QUERY_SECRET, WRONG_KEY):
        for body in served:
            assert secret.encode() not in body, secret
