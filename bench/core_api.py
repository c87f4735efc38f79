"""Core API bench: `GET /api/clients/{cid}/proxies` with 10,000 proxies in one client.

Runs a real admin (`run_admin.py serve`) on SQLite and on a throwaway PostgreSQL
server (tests/stores.py's), makes one client through the Core API, inserts the
proxies in bulk through the models (setup only), then times the list through
the admin's HTTP API: the median of several calls, after one warm-up call.
The goal is under 100 ms on both stores.

    .venv/bin/python -m bench.core_api [--proxies N] [--calls N] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.configure import REGION, CoreApi, _credential  # noqa: E402
from models import Proxy  # noqa: E402
from models.base import utcnow  # noqa: E402
from models.ids import new_id  # noqa: E402
from models.store import make_engine, make_session_factory  # noqa: E402
from tests import stores  # noqa: E402
from tests.support import AdminServer, run_admin_cli, start_admin  # noqa: E402

GOAL_MS = 100.0
PROXIES = 10_000
CALLS = 15


def make_user(server: AdminServer) -> CoreApi:
    result = run_admin_cli(server, "create-user", "bench@example.test")
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return CoreApi(server.base_url, result.stdout.strip().splitlines()[-1])


def populate(server: AdminServer, api: CoreApi, count: int) -> str:
    """One client holding `count` proxies (references made through the API); its id."""
    client = api.create("/api/clients", {"clientName": "bench"}, "clients")["clientId"]
    base = f"/api/clients/{client}"
    caller = api.create(
        f"{base}/credentials",
        _credential("proxy", "apiKey", {"key": "X-API-Key", "value": "bench-key"}),
        "credentials",
    )["sKey"]
    target_credential = api.create(
        f"{base}/credentials", _credential("target", "bearer", {"token": "bench-target"}),
        "credentials",
    )["sKey"]  # fmt: skip
    target = api.create(
        f"{base}/targets",
        {"targetName": "bench", "targetRegion": REGION, "targetBaseURL": "http://127.0.0.1:9"},
        "targets",
    )["sKey"]
    now = utcnow()
    rows = [
        {
            "id": new_id("proxy"),
            "client_id": client,
            "name": f"bench {number}",
            "alias": f"bench-{number}" if number % 2 else None,
            "region": REGION,
            "proxy_credential_id": caller,
            "target_id": target,
            "target_credential_id": target_credential,
            "additional_headers": {"X-Bench": str(number)},
            "additional_query_params": {},
            "additional_data": {},
            "max_requests_per_minute": 100,
            "max_requests_per_day": 1000,
            "created_at": now,
            "updated_at": now,
        }
        for number in range(count)
    ]
    engine = make_engine(server.database_url)
    try:
        with make_session_factory(engine)() as session:
            session.execute(insert(Proxy), rows)
            session.commit()
    finally:
        engine.dispose()
    return client


def time_list(api: CoreApi, client: str, count: int, calls: int) -> list[float]:
    """Milliseconds of each of `calls` list calls (after one warm-up), wall clock at the caller."""
    url = f"{api.base_url}/api/clients/{client}/proxies"
    timings = []
    for number in range(calls + 1):
        started = time.perf_counter()
        response = api.session.get(url, timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        if number == 0:
            listed = len(response.json()["proxies"])
            if listed != count:
                raise RuntimeError(f"listed {listed} proxies, expected {count}")
            continue
        timings.append(elapsed)
    return timings


def run_store(kind: str, count: int, calls: int) -> dict:
    """Start an admin on store `kind`, populate it, time the list; the figures."""
    os.environ[stores.STORE_ENV] = kind
    with tempfile.TemporaryDirectory(prefix=f"portcullis-bench-{kind}-") as folder:
        server = start_admin(Path(folder) / "admin")
        try:
            api = make_user(server)
            client = populate(server, api, count)
            timings = time_list(api, client, count, calls)
            size = len(requests.get(
                f"{server.base_url}/api/clients/{client}/proxies",
                headers={"Authorization": api.session.headers["Authorization"]},
                timeout=60,
            ).content)  # fmt: skip
        finally:
            server.stop()
            stores.stop_server()
    return {
        "store": kind,
        "proxies": count,
        "calls": calls,
        "median_ms": statistics.median(timings),
        "min_ms": min(timings),
        "max_ms": max(timings),
        "bytes": size,
    }


def report(result: dict) -> str:
    verdict = "ok" if result["median_ms"] < GOAL_MS else f"OVER the {GOAL_MS:g} ms goal"
    return (
        f"{result['store']:<10} list of {result['proxies']} proxies ({result['bytes']} bytes): "
        f"median {result['median_ms']:.1f} ms over {result['calls']} calls "
        f"(min {result['min_ms']:.1f}, max {result['max_ms']:.1f}) — {verdict}"
    )


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", type=int, default=PROXIES)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--store", choices=stores.STORES, action="append")
    args = parser.parse_args(argv)
    previous = os.environ.get(stores.STORE_ENV)
    results = []
    try:
        for kind in args.store or stores.STORES:
            result = run_store(kind, args.proxies, args.calls)
            print(report(result), flush=True)
            results.append(result)
    finally:
        if previous is None:
            os.environ.pop(stores.STORE_ENV, None)
        else:
            os.environ[stores.STORE_ENV] = previous
    return results


if __name__ == "__main__":
    main()
