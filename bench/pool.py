"""Pool bench (issue 16): the pool API's queries on 100,000 proxies, the scrape-and-store rate
for 50,000 candidates, and check throughput against local proxies, on SQLite and PostgreSQL.

Each store gets a real admin (`run_admin.py serve`, the throwaway PostgreSQL server of
tests/stores.py for PostgreSQL) with loopback sources and members allowed and its own
check job idle (the bench runs the cycle itself):

- query: 100,000 proxies inserted in bulk (setup only; not due a check), then every
  filter and sort of `GET /pool/proxies` through the admin's HTTP API, the median of
  `--calls` calls after one warm-up, wall clock at the caller; goal under 100 ms. With
  `--explain`, the plan of every statement behind each query (captured in-process).
- scrape: a local HTTP source listing 50,000 `ip:port` lines, created and scraped through
  `POST /pool/sources` and `POST /pool/sources/{id}/scrape`: once (all new), then again
  (all updated); candidates stored per second.
- check: `--members` small HTTP proxies (tests/pool_proxies.py, elite mode, on loopback
  addresses of their own) stored due now, then one `run_check_cycle` against the admin's
  own judge; checks per second (a check = one proxy through every applicable stage).

    .venv/bin/python -m bench.pool [--store sqlite|postgresql] [--part query|scrape|check]
        [--proxies N] [--candidates N] [--members N] [--calls N] [--explain]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests
from sqlalchemy import event, insert, text

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.base import utcnow  # noqa: E402
from models.crypto import KeyRing  # noqa: E402
from models.pool import ANONYMITIES, PROTOCOLS, PoolProxy  # noqa: E402
from models.ssrf_policy import parse_allowances  # noqa: E402
from models.store import make_engine, make_session_factory  # noqa: E402
from tests import stores  # noqa: E402
from tests.support import TEST_MASTER_KEYS, AdminServer, run_admin_cli, start_admin  # noqa: E402

GOAL_MS = 100.0
PROXIES = 100_000
CANDIDATES = 50_000
MEMBERS = 1000
CALLS = 9
LOOPBACK = "127.0.0.0/8"
NEVER_DUE = 4102444800.0  # 2100: the bench's query rows are never checked
COUNTRIES = ["US", "DE", "FR", "GB", "NL", "JP", "CN", "BR", "RU", "IN", "CA", "SG"] + [
    f"{a}{b}" for a in "KLMP" for b in "ABCDE"
]
QUERIES = [
    {},
    {"sort": "score", "order": "asc"},
    {"status": "active"},
    {"status": "active", "sort": "latency"},
    {"status": "active", "sort": "uptime"},
    {"status": "active", "sort": "last_checked"},
    {"status": "dead", "sort": "last_checked", "order": "asc"},
    {"sort": "latency"},
    {"sort": "latency", "order": "desc"},
    {"sort": "uptime", "order": "asc"},
    {"sort": "last_checked"},
    {"protocol": "socks5"},
    {"anonymity": "elite"},
    {"country": "US"},
    {"min_score": "0.8"},
    {"max_latency_ms": "300", "sort": "latency"},
    {"min_uptime_pct": "90", "sort": "uptime"},
    {"verified_within_minutes": "30", "sort": "last_checked"},
    {"status": "active", "protocol": "http", "country": "US", "min_score": "0.5"},
    {"status": "active", "anonymity": "elite", "sort": "latency", "limit": "200"},
    {"country": "KE", "sort": "latency"},  # a rare country sorted by another column
]


def proxy_rows(count: int, seed: int = 16) -> list[dict]:
    """`count` proxies like a real pool's: most dead, a third active, a tenth never checked."""
    rng = random.Random(seed)
    now = utcnow()
    rows = []
    for n in range(count):
        status = rng.choices(["active", "dead", "unchecked"], [30, 60, 10])[0]
        checked = status != "unchecked"
        rows.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "host": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
                "port": 1024 + rng.randrange(60000),
                "protocol": rng.choice(PROTOCOLS),
                "status": status,
                "anonymity": rng.choice(ANONYMITIES) if checked else None,
                "exit_ip": f"203.0.{n >> 8 & 255}.{n & 255}" if checked else None,
                "country": rng.choice(COUNTRIES) if checked else None,
                "score": round(rng.random(), 4) if status == "active" else 0.0,
                "avg_latency_ms": rng.uniform(20, 3000) if checked else None,
                "uptime_pct": rng.uniform(0, 100) if checked else None,
                "checks_total": 0,
                "checks_passed": 0,
                "consecutive_failures": 0,
                "last_checked_at": now - timedelta(minutes=rng.uniform(0, 2000))
                if checked
                else None,
                "first_seen_at": now - timedelta(days=3),
                "last_seen_at": now - timedelta(days=1),
                "next_check_at": NEVER_DUE,
                "tags": {},
            }
        )
    return rows


def start(kind: str, folder: Path) -> AdminServer:
    os.environ[stores.STORE_ENV] = kind
    return start_admin(
        folder / "admin",
        PORTCULLIS_POOL_ALLOW_SOURCES=LOOPBACK,
        PORTCULLIS_POOL_ALLOW_PROXIES=LOOPBACK,
        PORTCULLIS_POOL_CHECK_INTERVAL_MS="86400000",
        PORTCULLIS_LOG_LEVEL="warning",
    )


def pool_key(server: AdminServer) -> str:
    """A key of the first user (a platform admin), from the CLI."""
    result = run_admin_cli(server, "pool-key", "admin@localhost", "--label", "bench")
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return result.stdout.strip().splitlines()[-1]


def timed(session: requests.Session, url: str, params: dict, calls: int) -> tuple[list, dict]:
    """Milliseconds of `calls` GETs after one warm-up; the warm-up's body."""
    timings, body = [], None
    for number in range(calls + 1):
        started = time.perf_counter()
        response = session.get(url, params=params, timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        if number == 0:
            body = response.json()
        else:
            timings.append(elapsed)
    return timings, body


def explain(database_url: str, params: dict) -> list[str]:
    """The plan of each statement `GET /proxies?params` runs (list_proxies in-process)."""
    from pool.query import list_proxies, parse_proxy_query

    engine = make_engine(database_url)
    captured: list[tuple[str, object]] = []

    def capture(connection, cursor, statement, parameters, context, executemany) -> None:
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    plans = []
    try:
        with make_session_factory(engine)() as session:
            list_proxies(session, parse_proxy_query({k: str(v) for k, v in params.items()}))
        event.remove(engine, "before_cursor_execute", capture)
        with engine.connect() as connection:
            for sql, sql_params in captured:
                prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
                raw = connection.connection.dbapi_connection.cursor()
                raw.execute(prefix + sql, sql_params)
                rows = raw.fetchall()
                lines = [str(r[-1]) for r in rows]
                plans.append(" | ".join(line.strip() for line in lines))
    finally:
        engine.dispose()
    return plans


def bench_queries(server: AdminServer, count: int, calls: int, show_plans: bool) -> list[dict]:
    engine = make_engine(server.database_url)
    try:
        rows = proxy_rows(count)
        started = time.perf_counter()
        with engine.begin() as connection:
            for at in range(0, len(rows), 5000):
                connection.execute(insert(PoolProxy), rows[at : at + 5000])
            if engine.dialect.name == "postgresql":
                connection.execute(text("ANALYZE pool_proxies"))
            else:
                connection.execute(text("ANALYZE"))
        print(f"  inserted {count} proxies in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        engine.dispose()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {pool_key(server)}"
    url = f"{server.base_url}/pool/proxies"
    results = []
    for params in QUERIES:
        timings, body = timed(session, url, params, calls)
        results.append(
            {
                "params": params,
                "median_ms": statistics.median(timings),
                "max_ms": max(timings),
                "items": len(body["items"]),
                "total": body["total_count"],
            }
        )
        if body["next_cursor"]:  # the next page, through the cursor
            page2, _ = timed(session, url, {**params, "cursor": body["next_cursor"]}, calls)
            results[-1]["page2_ms"] = statistics.median(page2)
        if show_plans:
            for plan in explain(server.database_url, params):
                print(f"    plan {query_name(params)}: {plan}", flush=True)
    return results


def query_name(params: dict) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items()) or "(defaults: sort=score desc)"


def bench_scrape(server: AdminServer, candidates: int) -> list[dict]:
    from tests.pool_source_server import SourceServer

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {pool_key(server)}"
    lines = [
        f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}:{1024 + n % 60000}" for n in range(candidates)
    ]
    results = []
    with SourceServer() as source:
        list_url = source.serve("/list.txt", "\n".join(lines) + "\n")
        created = session.post(
            f"{server.base_url}/pool/sources",
            json={"url": list_url, "parser_name": "plaintext", "cron_schedule": "0 0 1 1 *"},
            timeout=60,
        )
        created.raise_for_status()
        source_id = created.json()["id"]
        for label in ("first scrape (all new)", "second scrape (all updated)"):
            started = time.perf_counter()
            answer = session.post(f"{server.base_url}/pool/sources/{source_id}/scrape", timeout=300)
            wall = time.perf_counter() - started
            answer.raise_for_status()
            result = answer.json()
            results.append({"label": label, "wall_s": wall, **result})
    return results


def bench_checks(server: AdminServer, members: int) -> dict:
    from pool.check_cycle import run_check_cycle
    from tests.pool_proxies import ProxyFarm

    settings = server.settings(
        pool_allow_proxies=parse_allowances(LOOPBACK),
        pool_judge_url=server.base_url + "/pool/judge",
        pool_check_timeout_ms=10000,
    )
    engine = make_engine(server.database_url)
    sessions = make_session_factory(engine)
    try:
        with ProxyFarm() as farm:
            listening = [
                farm.http(f"m{n}", "elite", f"127.0.{1 + n // 250}.{1 + n % 250}")
                for n in range(members)
            ]
            with sessions() as session:
                session.execute(
                    insert(PoolProxy),
                    [
                        {"id": str(uuid.uuid4()), "host": m.host, "port": m.port,
                         "protocol": m.protocol, "next_check_at": 0.0, "tags": {}}
                        for m in listening
                    ],
                )  # fmt: skip
                session.commit()
            started = time.perf_counter()
            counts = run_check_cycle(settings, KeyRing.parse(TEST_MASTER_KEYS), sessions)
            wall = time.perf_counter() - started
    finally:
        engine.dispose()
    return {"members": members, "wall_s": wall, "per_s": counts["checked"] / wall, **counts}


def run_store(kind: str, args) -> None:
    print(f"== {kind}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"portcullis-bench-pool-{kind}-") as folder:
        try:
            if "query" in args.part:
                server = start(kind, Path(folder) / "query")
                try:
                    for r in bench_queries(server, args.proxies, args.calls, args.explain):
                        verdict = "ok" if r["median_ms"] < GOAL_MS else f"OVER {GOAL_MS:g} ms"
                        page2 = f", page 2 {r['page2_ms']:.1f}" if "page2_ms" in r else ""
                        print(
                            f"  GET /pool/proxies?{query_name(r['params'])}: median "
                            f"{r['median_ms']:.1f} ms (max {r['max_ms']:.1f}{page2}; "
                            f"{r['items']} of {r['total']}) {verdict}",
                            flush=True,
                        )
                finally:
                    server.stop()
            if "scrape" in args.part:
                server = start(kind, Path(folder) / "scrape")
                try:
                    for r in bench_scrape(server, args.candidates):
                        rate = r["proxies_discovered"] / r["wall_s"]
                        print(
                            f"  {r['label']}: {r['proxies_discovered']} candidates, "
                            f"{r['proxies_new']} new, {r['proxies_updated']} updated in "
                            f"{r['duration_ms'] / 1000:.2f} s (request {r['wall_s']:.2f} s): "
                            f"{rate:,.0f} candidates/s",
                            flush=True,
                        )
                finally:
                    server.stop()
            if "check" in args.part:
                server = start(kind, Path(folder) / "check")
                try:
                    r = bench_checks(server, args.members)
                    print(
                        f"  check cycle over {r['members']} local proxies: {r['checked']} "
                        f"checked ({r['active']} active, {r['dead']} dead) in "
                        f"{r['wall_s']:.2f} s: {r['per_s']:.0f} proxies/s "
                        "(3 checks each: tcp_connect, http_anonymity, https_connect)",
                        flush=True,
                    )
                finally:
                    server.stop()
        finally:
            stores.stop_server()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=stores.STORES, action="append")
    parser.add_argument("--part", choices=("query", "scrape", "check"), action="append")
    parser.add_argument("--proxies", type=int, default=PROXIES)
    parser.add_argument("--candidates", type=int, default=CANDIDATES)
    parser.add_argument("--members", type=int, default=MEMBERS)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--explain", action="store_true", help="print each query's plans")
    args = parser.parse_args(argv)
    args.part = args.part or ["query", "scrape", "check"]
    previous = os.environ.get(stores.STORE_ENV)
    try:
        for kind in args.store or stores.STORES:
            run_store(kind, args)
    finally:
        if previous is None:
            os.environ.pop(stores.STORE_ENV, None)
        else:
            os.environ[stores.STORE_ENV] = previous


if __name__ == "__main__":
    main()
