"""Telemetry (seed 000) end to end: known traffic through a real mitmdump, every map checked.

The caller's country comes from X-Forwarded-For, which the gateway believes
here because 127.0.0.1 is configured as a trusted proxy in front of it.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter

import pytest

from models.latency import bucket_of, percentile
from tests.proxy_support import CALLER_KEY, Setup, call, start_proxy, wait_until_served
from tests.support import (
    assert_error,
    assert_invalid,
    new_client,
    run_admin_cli,
    run_admin_cli_in_process,
)

AUTH = {"X-API-Key": CALLER_KEY}
WRITE_TIMEOUT_S = 10
# (path, X-Forwarded-For, times); the readiness call adds one GET /status/204 without it
TRAFFIC = [
    ("/status/200", "8.8.8.8", 4),
    ("/status/404?delay_ms=30", "1.1.1.1", 2),
    ("/status/503?delay_ms=120", None, 1),
]
DENIED = 2  # wrong credential, from 8.8.8.8: a proxy leg without a target leg
EXPECTED = {
    "countMap": {"proxy": 10, "target": 8},
    "successCountMap": {"proxy": 5, "target": 5},
    "errorCountMap": {"proxy": 5, "target": 3},
    "codeCountMap": {
        "200:proxy": 4, "204:proxy": 1, "401:proxy": 2, "404:proxy": 2, "503:proxy": 1,
        "200:target": 4, "204:target": 1, "404:target": 2, "503:target": 1,
    },
    "countryCountMap": {
        "US:proxy": 6, "AU:proxy": 2, "XX:proxy": 2,
        "US:target": 4, "AU:target": 2, "XX:target": 2,
    },
    "toolCountMap": {},  # not an MCP proxy
}  # fmt: skip
SUMMED_MAPS = tuple(EXPECTED)


@pytest.fixture(scope="module")
def trusting_gateway(admin_server, tmp_path_factory):
    proxy = start_proxy(
        admin_server,
        tmp_path_factory.mktemp("trusting"),
        "--set",
        "portcullis_trusted_proxies=127.0.0.1",
    )
    yield proxy
    proxy.stop()


def send_known_traffic(gateway, made: Setup) -> None:
    wait_until_served(gateway, f"/api/{made.id}/status/204", AUTH)
    for path, forwarded_for, times in TRAFFIC:
        headers = {**AUTH, **({"X-Forwarded-For": forwarded_for} if forwarded_for else {})}
        for _ in range(times):
            call(gateway, "GET", f"/api/{made.id}{path}", headers=headers)
    for _ in range(DENIED):
        wrong = {"X-API-Key": "wrong", "X-Forwarded-For": "8.8.8.8"}
        assert call(gateway, "GET", f"/api/{made.id}/status/200", headers=wrong).status_code == 401


def telemetry(api, path: str, **params) -> dict:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_count(api, path: str, count: int, **params) -> list[dict]:
    """The records once their proxy-leg counts add up to `count` (the writer batches)."""
    deadline = time.monotonic() + WRITE_TIMEOUT_S
    while True:
        records = telemetry(api, path, **params)["telemetry"]
        if sum(r["countMap"].get("proxy", 0) for r in records) >= count:
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"telemetry did not reach {count}: {records}")
        time.sleep(0.05)  # polling the store for the writer's batch, bounded by the deadline


def summed(records: list[dict], name: str) -> dict:
    total: Counter = Counter()
    for record in records:
        total.update(record[name])
    return dict(total)


def assert_derived_values(records: list[dict]) -> None:
    """Every derived map follows from the stored ones; the EWMA runs over the records in order."""
    ewma = None
    for record in records:
        for leg, count in record["countMap"].items():
            total = record["totalResponseTimeMap"][leg]
            assert record["averageResponseTimeMap"][leg] == pytest.approx(total / count, abs=1e-3)
            assert record["successRateMap"][leg] == round(record["successCountMap"][leg] / count, 4)
            assert record["errorRateMap"][leg] == round(record["errorCountMap"][leg] / count, 4)
            codes = sum(v for k, v in record["codeTotalRTMap"].items() if k.endswith(f":{leg}"))
            assert codes == pytest.approx(total, abs=0.01)
        for key, count in record["countryCountMap"].items():
            average = record["countryTotalRTMap"][key] / count
            assert record["countryAverageRTMap"][key] == pytest.approx(average, abs=1e-3)
        if record["countMap"].get("proxy"):
            average = record["totalResponseTimeMap"]["proxy"] / record["countMap"]["proxy"]
            ewma = average if ewma is None else 0.3 * average + 0.7 * ewma
        assert record["ewmaResponseTime"] == pytest.approx(ewma, abs=1e-3)


def logged_durations_ms(api, made: Setup) -> dict[str, list[float]]:
    """Each leg's response times as the request log recorded them (same clock, ms resolution)."""
    entries = api.get(f"{made.base}/proxies/{made.id}/requests").json()["requests"]
    proxy = [e["proxyData"]["duration"] * 1000 for e in entries]
    target = [e["targetData"]["duration"] * 1000 for e in entries if e["targetData"]]
    return {"proxy": sorted(proxy), "target": sorted(target)}


def histogram(records: list[dict], leg: str) -> dict[int, int]:
    counts: Counter = Counter()
    for key, count in summed(records, "responseTimeBucketCountMap").items():
        label, bucket_leg = key.split(":")
        if bucket_leg == leg:
            counts[bucket_of(math.inf if label == "+Inf" else float(label))] += count
    return dict(counts)


def test_known_traffic_fills_every_map_exactly(api, upstream, trusting_gateway):
    made = Setup(api, upstream)
    send_known_traffic(trusting_gateway, made)
    path = f"{made.base}/proxies/{made.id}/telemetry"
    records = wait_for_count(api, path, 10, interval="minute")

    for name, expected in EXPECTED.items():
        assert summed(records, name) == expected, name
    for record in records:
        assert record["pKey"] == record["proxyId"] == made.id
        assert len(record["sKey"]) == len("2025-09-10-02-31")
    assert_derived_values(records)

    durations = logged_durations_ms(api, made)
    for leg in ("proxy", "target"):
        assert sum(histogram(records, leg).values()) == EXPECTED["countMap"][leg]
        for q in (0.5, 0.9, 0.99):
            exact = durations[leg][max(1, math.ceil(round(q * len(durations[leg]), 9))) - 1]
            estimate = percentile(histogram(records, leg), q)
            assert abs(bucket_of(estimate) - bucket_of(exact)) <= 1, (leg, q, estimate, exact)
            if len(records) == 1:
                key = f"p{round(q * 100)}:{leg}"
                assert records[0]["percentileResponseTimeMap"][key] == round(estimate, 3)


def test_compaction_rolls_minutes_up_into_hours_days_and_months(
    admin_server, api, upstream, trusting_gateway
):
    made = Setup(api, upstream)
    send_known_traffic(trusting_gateway, made)
    path = f"{made.base}/proxies/{made.id}/telemetry"
    minutes = wait_for_count(api, path, 10, interval="minute")
    # Twice: compaction is idempotent (the second run through the same `main`, in this process).
    for run in (run_admin_cli, run_admin_cli_in_process):
        result = run(admin_server, "roll-up-telemetry")
        assert result.returncode == 0, result.stderr
        for interval in ("hour", "day", "month"):
            records = telemetry(api, path, interval=interval)["telemetry"]
            for name in (*SUMMED_MAPS, "countryTotalRTMap", "responseTimeBucketCountMap"):
                expected = summed(minutes, name)
                # Times are shown rounded to 0.001 ms: a sum of rounded minutes may differ
                # from the rounded sum by half a unit per minute summed.
                rounding = 0.0005 * len(minutes)
                assert summed(records, name) == pytest.approx(expected, abs=rounding), (
                    interval,
                    name,
                )
            assert_derived_values(records)
    client_records = telemetry(api, f"{made.base}/telemetry", interval="minute")["telemetry"]
    assert summed(client_records, "countMap") == EXPECTED["countMap"]
    assert all(r["pKey"] == r["clientId"] == made.client_id for r in client_records)


def test_client_telemetry_sums_its_proxies(api, upstream, gateway):
    first = Setup(api, upstream)
    # A second proxy in the same client, on the same credentials and target.
    body = {
        "proxyName": "second",
        "proxyRegion": first.proxy["proxyRegion"],
        "proxyProxyCredentialId": first.caller["sKey"],
        "proxyTargetId": first.target["sKey"],
        "proxyTargetCredentialId": first.target_cred["sKey"],
    }
    created = api.post(f"{first.base}/proxies", json=body)
    assert created.status_code == 201, created.text
    second_id = created.json()["proxies"][0]["sKey"]
    for proxy_id, times in ((first.id, 3), (second_id, 2)):
        wait_until_served(gateway, f"/api/{proxy_id}/status/200", AUTH)
        for _ in range(times - 1):
            call(gateway, "GET", f"/api/{proxy_id}/status/200", headers=AUTH)
    records = wait_for_count(api, f"{first.base}/telemetry", 5, interval="minute")
    assert summed(records, "countMap") == {"proxy": 5, "target": 5}
    per_proxy = [
        summed(telemetry(api, f"{first.base}/proxies/{p}/telemetry", interval="minute")[
            "telemetry"], "countMap")
        for p in (first.id, second_id)
    ]  # fmt: skip
    assert per_proxy == [{"proxy": 3, "target": 3}, {"proxy": 2, "target": 2}]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "week"}, "interval"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"startDate": "yesterday"}, "startDate"),
        ({"startDate": "2025-09-02T00:00:00Z", "endDate": "2025-09-01T00:00:00Z"}, "startDate"),
        ({"color": "blue"}, "color"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(api, setup, params, field):
    for path in (f"{setup.base}/proxies/{setup.id}/telemetry", f"{setup.base}/telemetry"):
        assert_invalid(api.get(path, params=params), field)


def test_other_tenants_and_unknown_proxies_are_404(api, setup, make_user, admin_server):
    from tests.support import Api

    stranger = Api(admin_server.base_url, make_user().token)
    assert_error(stranger.get(f"{setup.base}/proxies/{setup.id}/telemetry"), 404, "NOT_FOUND")
    assert_error(stranger.get(f"{setup.base}/telemetry"), 404, "NOT_FOUND")
    other = new_client(api)
    path = f"/api/clients/{other}/proxies/{setup.id}/telemetry"
    assert_error(api.get(path), 404, "NOT_FOUND")


def test_two_proxy_processes_on_one_store_add_up(admin_server, api, upstream, gateway, tmp_path):
    from tests.test_metrics_history import wait_for_points

    second = start_proxy(admin_server, tmp_path)
    try:
        made = Setup(api, upstream)
        for each in (gateway, second):
            wait_until_served(each, f"/api/{made.id}/status/200", AUTH)
            for _ in range(4):
                call(each, "GET", f"/api/{made.id}/status/200", headers=AUTH)
        path = f"{made.base}/proxies/{made.id}/telemetry"
        records = wait_for_count(api, path, 10, interval="minute")
        assert summed(records, "countMap") == {"proxy": 10, "target": 10}
        assert summed(records, "codeCountMap") == {"200:proxy": 10, "200:target": 10}
        points = wait_for_points(api, made, lambda p: p and p[-1]["requests"] == 10)
        assert points[-1]["requests"] == 10
        assert points[-1]["ttl"] == 10, "each call opened its own client connection"
    finally:
        second.stop()


def rpc(method: str, tool: str | None = None, id_: int = 1) -> dict:
    params = {"name": tool, "arguments": {}} if tool is not None else {}
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}


MANY_TOOLS = [f"t{number:02d}" for number in range(20)]
# (JSON-RPC body, what it adds to toolCountMap); one POST each to an MCP proxy
MCP_TRAFFIC = [
    (rpc("tools/call", "search"), {"search": 1}),
    (rpc("tools/call", "search"), {"search": 1}),
    (rpc("tools/list"), {}),  # not a tool call
    (rpc("initialize"), {}),
    (  # a batch: each call counts, the same tool twice too
        [rpc("tools/call", "read_file", 1), rpc("tools/call", "search", 2),
         rpc("tools/call", "search", 3), rpc("tools/list", None, 4)],
        {"read_file": 1, "search": 2},
    ),
    (rpc("tools/call", "x" * 200), {"x" * 128: 1}),  # cut to the column's 128 characters
    (rpc("tools/call", "nul\u0000here"), {"nul\ufffdhere": 1}),  # storable on both stores
    (  # a caller's names cannot add rows without bound: past 16 in one request, "(other)"
        [rpc("tools/call", name, n) for n, name in enumerate(MANY_TOOLS)],
        {**dict.fromkeys(MANY_TOOLS[:16], 1), "(other)": 4},
    ),
]  # fmt: skip


def test_mcp_tool_calls_are_counted_per_tool(api, upstream, gateway):
    made = Setup(api, upstream, proxyMcp=True)
    headers = {**AUTH, "Content-Type": "application/json"}
    wait_until_served(gateway, f"/api/{made.id}/status/204", AUTH)
    expected: Counter = Counter()
    for body, adds in MCP_TRAFFIC:
        data = json.dumps(body).encode()
        response = call(gateway, "POST", f"/api/{made.id}/mcp", headers=headers, data=data)
        assert response.status_code == 200, response.text
        expected.update(adds)
    path = f"{made.base}/proxies/{made.id}/telemetry"
    records = wait_for_count(api, path, 1 + len(MCP_TRAFFIC), interval="minute")
    assert summed(records, "toolCountMap") == dict(expected)
    totals = summed(records, "toolTotalRTMap")
    assert set(totals) == set(expected) and all(ms > 0 for ms in totals.values())
    # The client's telemetry answers the same map.
    client_records = telemetry(api, f"{made.base}/telemetry", interval="minute")["telemetry"]
    assert summed(client_records, "toolCountMap") == dict(expected)


def test_streamed_answers_count_with_their_full_size_also_when_broken_off(api, gateway):
    """A clean stream (mitmproxy's `response` hook) and one the caller leaves mid-way (its
    `error` hook) are both counted, with the bytes that passed, as the request log has them."""
    from tests.stream_support import StreamingTarget
    from tests.test_metrics_history import wait_for_points

    with StreamingTarget() as target:
        made = Setup(api, target)
        wait_until_served(gateway, f"/api/{made.id}/once?size=10", AUTH)
        clean = call(gateway, "GET", f"/api/{made.id}/sse?n=3&gap=0.05", headers=AUTH)
        assert clean.status_code == 200 and clean.content.count(b"data:") == 3
        with call(gateway, "GET", f"/api/{made.id}/hold?id=left", headers=AUTH, stream=True) as r:
            assert r.status_code == 200
            assert next(r.iter_content(chunk_size=None)).startswith(b"data:")
        assert target.closed_at("left") is not None, "the caller's leaving reached the target"
        path = f"{made.base}/proxies/{made.id}/telemetry"
        records = wait_for_count(api, path, 3, interval="minute")
        # The stream the caller left has its target leg too: it ended when the caller left.
        assert summed(records, "codeCountMap") == {"200:proxy": 3, "200:target": 3}
        logged = wait_for_log(api, made, 3)
        streamed = {
            e["proxyData"]["apiPath"]: e["proxyData"] for e in logged if e["proxyData"]["streamed"]
        }
        assert streamed["/hold"]["streamOutcome"] == "caller-disconnected"
        assert streamed["/sse"]["responseBytes"] == len(clean.content)
        size = sum(e["proxyData"]["responseBytes"] for e in logged)
        points = wait_for_points(api, made, lambda p: p and p[-1]["bytes"] >= size)
        assert points[-1]["bytes"] == size and points[-1]["requests"] == 3


def wait_for_log(api, made: Setup, count: int) -> list[dict]:
    """The proxy's request log once it has `count` entries (the writer batches)."""
    deadline = time.monotonic() + WRITE_TIMEOUT_S
    while True:
        entries = api.get(f"{made.base}/proxies/{made.id}/requests").json()["requests"]
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)  # polling the store for the writer's batch, bounded by the deadline
