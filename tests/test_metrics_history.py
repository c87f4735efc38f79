"""Metrics history (seed 004): points every 10 s, cumulative counters, merging past 5000 points."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from addons.telemetry_batch import Batch, Sample
from models.store import make_engine, make_session_factory
from tests.proxy_support import CALLER_KEY, Setup, call, wait_until_served
from tests.support import Api, assert_error, new_client

AUTH = {"X-API-Key": CALLER_KEY}
WAIT_S = 15  # a point's open-connection sample lands at the end of its 10 s window


def assert_flat_error(response, status: int, code: str) -> dict:
    """Seed 004's error body: `code`, `message` and `details` at the top level, nothing else."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code and body["message"] and isinstance(body["details"], dict)
    return body


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def metrics(api, made: Setup, start: datetime, end: datetime, **params):
    return api.get(
        f"{made.base}/proxies/{made.id}/metrics",
        params={"from": iso(start), "to": iso(end), **params},
    )


def wait_for_points(api, made: Setup, done, **params) -> list[dict]:
    """The points over the last hour once `done(points)` holds (bounded)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        now = datetime.now(UTC)
        response = metrics(
            api, made, now - timedelta(hours=1), now + timedelta(minutes=1), **params
        )
        assert response.status_code == 200, response.text
        if done(response.json()) or time.monotonic() > deadline:
            return response.json()
        time.sleep(0.1)  # polling the store for the writer's batch, bounded by the deadline


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "2026-01-01T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00Z"}, "to"),
        ({"from": "last tuesday", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-13-01T00:00:00Z"}, "to"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "step": "5"}, "step"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-08T00:00:00Z", "step": "60"}, "step"),
    ],
)
def test_bad_ranges_are_400_invalid_input_naming_the_parameter(api, setup, params, field):
    for prefix in ("/api", ""):
        response = api.get(f"{prefix}{setup.base[4:]}/proxies/{setup.id}/metrics", params=params)
        body = assert_flat_error(response, 400, "INVALID_INPUT")
        assert field in body["details"]["fields"] and field in body["message"]


def test_unknown_or_foreign_proxies_are_404_not_found(api, setup):
    params = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
    unknown = api.get(f"{setup.base}/proxies/proxy_doesnotexist/metrics", params=params)
    assert_flat_error(unknown, 404, "NOT_FOUND")
    other_client = new_client(api)
    foreign = api.get(f"/api/clients/{other_client}/proxies/{setup.id}/metrics", params=params)
    assert_flat_error(foreign, 404, "NOT_FOUND")


@pytest.mark.parametrize("token", [None, "u-not-a-real-token"])
def test_authentication_errors_are_flat_too(admin_server, setup, token):
    anonymous = Api(admin_server.base_url, token)
    response = anonymous.get(f"{setup.base}/proxies/{setup.id}/metrics")
    assert_flat_error(response, 401, "UNAUTHORIZED")


def test_the_rest_of_the_core_api_keeps_its_envelope(api, setup):
    response = api.get(f"{setup.base}/proxies/{setup.id}/telemetry", params={"limit": "0"})
    assert_error(response, 400, "INVALID_INPUT")
    assert_error(api.get(f"{setup.base}/proxies/proxy_doesnotexist"), 404, "NOT_FOUND")


def test_the_openapi_document_shows_the_flat_error_shape(admin_server):
    document = requests.get(f"{admin_server.base_url}/api/openapi.json", timeout=30).json()
    schemas = document["components"]["schemas"]
    assert set(schemas["FlatErrorSchema"]["properties"]) == {"code", "message", "details"}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            errors = {k: v for k, v in operation["responses"].items() if k.startswith(("4", "5"))}
            refs = {v["content"]["application/json"]["schema"]["$ref"] for v in errors.values()}
            flat = path.endswith("/metrics")
            pool = path.startswith("/pool/")  # seed 003's {"error": {...}} without "message"
            expected = "FlatErrorSchema" if flat else "PoolErrorSchema" if pool else "ErrorSchema"
            assert refs == {f"#/components/schemas/{expected}"}, (path, refs)


def test_traffic_becomes_points_with_cumulative_counters(api, upstream, gateway):
    made = Setup(api, upstream)
    wait_until_served(gateway, f"/api/{made.id}/status/200", AUTH)
    for status in (200, 200, 404, 500):
        call(gateway, "GET", f"/api/{made.id}/status/{status}", headers=AUTH)
    points = wait_for_points(api, made, lambda p: p and p[-1]["requests"] == 5)
    last = points[-1]
    assert (last["requests"], last["errors"]) == (5, 2)
    assert last["ttl"] >= 1 and last["bytes"] > 0
    assert last["rt1Ms"] is not None and last["p90Ms"] >= last["rt1Ms"]
    stamps = [datetime.fromisoformat(p["capturedAt"].replace("Z", "+00:00")) for p in points]
    assert stamps == sorted(stamps) and all(s.second % 10 == 0 for s in stamps)
    assert all(p["stepSeconds"] == 10 for p in points)
    for earlier, later in itertools.pairwise(points):
        assert later["requests"] >= earlier["requests"] and later["ttl"] >= earlier["ttl"]


def test_open_connections_are_sampled_at_the_end_of_each_window(api, upstream, gateway):
    made = Setup(api, upstream)
    wait_until_served(gateway, f"/api/{made.id}/status/200", AUTH)
    with requests.Session() as keep_alive:  # one connection, held open across a window end
        response = keep_alive.get(f"{gateway.base_url}/api/{made.id}/status/200", headers=AUTH)
        assert response.ok
        points = wait_for_points(api, made, lambda p: any(x["opn"] >= 1 for x in p))
        assert any(point["opn"] >= 1 for point in points)


def test_a_seven_day_range_is_merged_into_at_most_5000_points_covering_it(
    admin_server, api, upstream
):
    made = Setup(api, upstream)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=7) + timedelta(minutes=1)  # inside the 7-day retention
    begin = int(start.timestamp())
    # One request a minute for the whole week, written by the data plane's own writer code:
    # 10,080 stored points, twice the most one answer may hold, and two or three in each
    # merged point (a step of 130 s), so merging is forced and merges several points each.
    batch = Batch(now=time.time())
    stamps = range(begin, int(end.timestamp()), 60)
    for at in stamps:
        batch.add(
            Sample(made.id, made.client_id, at, "8.8.8.8", (), 200, 20.0, 200, 19.0, 50, False)
        )
    engine = make_engine(admin_server.database_url)
    try:
        with make_session_factory(engine)() as session:
            batch.write(session)
            session.commit()
    finally:
        engine.dispose()

    response = metrics(api, made, start, end)
    assert response.status_code == 200, response.text
    points = response.json()
    step = int(response.headers["Portcullis-Metrics-Step"])
    assert step > 10 and 0 < len(points) <= 5000
    assert all(p["stepSeconds"] == step for p in points)
    first = datetime.fromisoformat(points[0]["capturedAt"].replace("Z", "+00:00"))
    last = datetime.fromisoformat(points[-1]["capturedAt"].replace("Z", "+00:00"))
    assert first == start and last > end - timedelta(seconds=step)
    assert points[-1]["requests"] == len(stamps)
    assert points[0]["p90Ms"] is not None

    hourly = metrics(api, made, start, end, step=3600).json()
    assert len(hourly) == 7 * 24 and hourly[-1]["requests"] == len(stamps)
