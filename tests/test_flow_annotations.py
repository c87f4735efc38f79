"""What a developer sees in mitmweb: annotated flows, refusals marked, injected secrets blanked.

mitmweb shows the same flow objects `mitmdump -w` saves, so the saved flows are read back here.
"""

from __future__ import annotations

from mitmproxy import io

from tests.proxy_support import CALLER_KEY, Setup, start_proxy, wait_until_served

QUERY_SECRET = "QUERY-SECRET-annot-0001"
HEADER_SECRET = "HEADER-SECRET-annot-0001"


def saved_flows(path) -> list:
    with path.open("rb") as file:
        return list(io.FlowReader(file).stream())


def test_flows_carry_request_id_proxy_code_and_rule_with_secrets_blanked(
    admin_server, api, upstream, tmp_path
):
    in_query = Setup(
        api,
        upstream,
        target={
            "credentialAuthType": "apiKey",
            "credentialSecret": {"value": QUERY_SECRET, "query": "key"},
        },
    )
    in_header = Setup(
        api,
        upstream,
        target={"credentialAuthType": "bearer", "credentialSecret": {"token": HEADER_SECRET}},
    )
    deny = in_header.rule(
        f"proxies/{in_header.id}", {"effect": "deny", "pathPattern": "^/v1/private"}
    )
    flow_file = tmp_path / "flows.mitm"
    gateway = start_proxy(admin_server, tmp_path, "-w", str(flow_file))
    try:
        auth = {"X-API-Key": CALLER_KEY}
        granted = [
            # /status/200 does not echo the request: an echoing target's body is its own output
            wait_until_served(gateway, f"/api/{made.id}/status/200?page=2", auth)
            for made in (in_query, in_header)
        ]
        denied = wait_until_served(
            gateway, f"/api/{in_header.id}/v1/private", auth, lambda r: r.status_code == 403
        )
    finally:
        gateway.stop()
    assert [r.status_code for r in (*granted, denied)] == [200, 200, 403]

    flows = {f.comment.split(" ")[1]: f for f in saved_flows(flow_file) if f.comment}
    for response in granted:
        flow = flows[response.headers["portcullis-request-id"]]
        assert " · proxy-access-granted · rule default" in flow.comment
        assert not flow.marked
        assert flow.request.path.startswith("/base/status/200?page=2")
    query_flow = flows[granted[0].headers["portcullis-request-id"]]
    assert query_flow.request.query["key"] == "[REDACTED]"
    header_flow = flows[granted[1].headers["portcullis-request-id"]]
    assert header_flow.request.headers["authorization"] == "[REDACTED]"

    refused = flows[denied.headers["portcullis-request-id"]]
    assert f"proxy-access-denied · rule {deny['ruleId']}" in refused.comment
    assert refused.marked == ":no_entry:"

    raw = flow_file.read_bytes()
    assert QUERY_SECRET.encode() not in raw and HEADER_SECRET.encode() not in raw
    assert CALLER_KEY.encode() not in raw, "the caller's credential is blanked too"


def test_a_flow_is_blanked_before_mitmweb_first_shows_it():
    """mitmweb's view takes each flow right after the addons' `requestheaders` hooks; by then
    a flow refused before authentication (here: no route state at all) holds no credential."""
    from mitmproxy.test import tflow

    from addons.respond import Respond

    flow = tflow.tflow()
    flow.request.path = "/api/nowhere/x?Authorization=SECRET-Q1&page=2&api_key=SECRET-Q2"
    flow.request.headers["Authorization"] = "Bearer SECRET-H1"
    flow.request.headers["X-API-Key"] = "SECRET-H2"
    flow.request.headers["Cookie"] = "session=SECRET-H3"
    flow.request.headers["X-Team"] = "payments"
    Respond().requestheaders(flow)
    shown = flow.request
    assert "SECRET" not in shown.path and shown.query["page"] == "2"
    assert [shown.headers[n] for n in ("Authorization", "X-API-Key", "Cookie")] == [
        "[REDACTED]"
    ] * 3
    assert shown.headers["X-Team"] == "payments"
