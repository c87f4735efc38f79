"""The pool API (seed 003 at `/pool`): `pp_` keys, every filter and sort of `GET /proxies`
with keyset pages that neither repeat nor skip rows while proxies are inserted, bad input
as 422s naming the parameter, a proxy's check history, and the pool's stats.

One admin of this module's own (its pool is only what these tests insert); proxies are
written straight into its store as scrapes and checks would leave them.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from admin.cli import create_user
from models.base import utcnow
from models.pool import PoolApiKey
from models.sign_in_throttle import SignInFailure
from models.tokens import hash_token
from tests.pool_support import (
    PoolApi,
    assert_pool_error,
    insert_checks,
    insert_proxies,
    minutes_ago,
    proxy_row,
    store_engine,
    stored_key_user,
)
from tests.support import AdminServer, Api, run_admin_cli, start_admin

LOOPBACK = "127.0.0.0/8"
MAX_FAILURES = 20  # unknown keys per address before the admin's sign-in throttle locks it
PROXY_KEYS = [
    "id", "ip", "port", "protocol", "status", "anonymity", "exit_ip", "country", "score",
    "avg_latency_ms", "uptime_pct", "last_checked_at", "first_seen_at", "tags",
]  # fmt: skip
# sort -> (row column, default order is descending)
SORTS = {
    "score": ("score", True),
    "latency": ("avg_latency_ms", False),
    "uptime": ("uptime_pct", True),
    "last_checked": ("last_checked_at", True),
}


@pytest.fixture(scope="module")
def pool_admin(tmp_path_factory) -> AdminServer:
    server = start_admin(
        tmp_path_factory.mktemp("pool-api"),
        PORTCULLIS_POOL_ALLOW_SOURCES=LOOPBACK,
        PORTCULLIS_POOL_ALLOW_PROXIES=LOOPBACK,
        PORTCULLIS_SIGN_IN_MAX_FAILURES=str(MAX_FAILURES),
    )
    yield server
    server.stop()
    store_engine(server.database_url).dispose()


@pytest.fixture(scope="module")
def key(pool_admin) -> str:
    """A key of the first user (the platform admin the admin made at start), from the CLI."""
    issued = run_admin_cli(pool_admin, "pool-key", "admin@localhost", "--label", "tests")
    assert issued.returncode == 0, issued.stderr
    assert "shown only this once" in issued.stdout
    return issued.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def pool(pool_admin, key) -> PoolApi:
    return PoolApi(pool_admin.base_url, key)


@pytest.fixture(scope="module")
def rows(pool_admin) -> list[dict]:
    """Every proxy this module inserts (tests append theirs): the expected answers' source."""
    return insert_proxies(pool_admin.database_url, known_set())


def known_set() -> list[dict]:
    """36 proxies over every status, protocol, anonymity and country, with tied scores and
    proxies never checked (no latency, uptime or check time)."""
    now = utcnow()
    made = []
    statuses = ["active", "dead", "unchecked"]
    protocols = ["http", "https", "socks4", "socks5"]
    anonymities = ["elite", "anonymous", "transparent", None]
    countries = ["US", "DE", "JP", None]
    for n in range(36):
        checked = n % 6 != 0
        made.append(
            proxy_row(
                status=statuses[n % 3],
                protocol=protocols[n % 4],
                anonymity=anonymities[n % 4] if checked else None,
                country=countries[(n // 2) % 4] if checked else None,
                exit_ip=f"203.0.113.{n}" if checked else None,
                score=[0.9, 0.5, 0.5, 0.25, 0.0, 0.75][n % 6] if checked else 0.0,
                avg_latency_ms=(100.0 + 37 * (n % 7)) if checked else None,
                uptime_pct=[99.5, 50.0, 80.25, 50.0, 10.0][n % 5] if checked else None,
                last_checked_at=minutes_ago(3 * n + 1, now) if checked else None,
                tags={"n": n},
            )
        )
    return made


def expected_order(rows: list[dict], column: str, descending: bool) -> list[str]:
    """Rows by `column` then id in one direction; rows without a value last, by id."""
    with_value = [r for r in rows if r.get(column) is not None]
    without = [r for r in rows if r.get(column) is None]
    with_value.sort(key=lambda r: (r[column], r["id"]), reverse=descending)
    without.sort(key=lambda r: r["id"], reverse=descending)
    return [r["id"] for r in with_value + without]


def walk(pool: PoolApi, params: dict, limit: int, between=None) -> list[list[dict]]:
    """Every page of `GET /proxies`, following next_cursor; `between()` runs between pages."""
    pages, cursor = [], None
    while True:
        answer = pool.get("/proxies", params={**params, "limit": limit, "cursor": cursor})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert list(body) == ["items", "next_cursor", "total_count"]
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(body["items"]) == limit
        if between:
            between()


def ids(pages: list[list[dict]]) -> list[str]:
    return [item["id"] for page in pages for item in page]


def test_keys_authenticate_every_endpoint_in_seed_shape(pool_admin, key, pool):
    """Keys are `pp_` + 48 letters/digits, stored hashed; no key, a bad, unknown, revoked or
    Core API token is a 401 with WWW-Authenticate; the first user is a platform admin."""
    assert re.fullmatch(r"pp_[A-Za-z0-9]{48}", key)
    store = pool_admin.store_bytes()
    assert key.encode() not in store and hash_token(key).encode() in store
    assert key[:8].encode() in store  # the prefix, shown in lists

    paths = ["/proxies", "/proxies/00000000-0000-4000-8000-000000000000", "/stats/pool"]
    paths.append("/stats/plugins")
    bootstrap_token = re.search(r"\n  (u-\S+)", pool_admin.log_text()).group(1)
    refused = {
        "none": PoolApi(pool_admin.base_url, None),
        "other scheme": PoolApi(pool_admin.base_url, None),
        "not a key": PoolApi(pool_admin.base_url, "pp_short"),
        "unknown": PoolApi(pool_admin.base_url, "pp_" + "A" * 48),
        "user token": PoolApi(pool_admin.base_url, bootstrap_token),
    }
    refused["other scheme"].session.headers["Authorization"] = f"Basic {key}"
    for name, client in refused.items():
        for path in paths:
            answer = client.get(path)
            assert_pool_error(answer, 401, "UNAUTHORIZED")
            assert answer.headers["WWW-Authenticate"].startswith("Bearer"), name
    for path in paths:
        assert pool.get(path).status_code == (404 if "0000" in path else 200), path

    def last_used():
        with store_engine(pool_admin.database_url).connect() as connection:
            query = select(PoolApiKey.last_used_at).where(PoolApiKey.key_hash == hash_token(key))
            return connection.execute(query).scalar_one()

    used = last_used()
    assert used is not None and pool.get("/stats/pool").status_code == 200
    assert last_used() == used, "last_used_at is written at most once a minute, not per request"

    # Guessing keys locks the address (the admin's sign-in throttle): 429, even for a good key.
    failures = 3 * len(paths)  # "not a key", "unknown" and "user token" above
    for _ in range(MAX_FAILURES - failures - 1):
        assert refused["unknown"].get("/proxies").status_code == 401
    locked = refused["unknown"].get("/proxies")
    assert_pool_error(locked, 429, "TOO_MANY_FAILURES")
    assert int(locked.headers["Retry-After"]) > 0
    assert_pool_error(pool.get("/proxies"), 429, "TOO_MANY_FAILURES")
    with store_engine(pool_admin.database_url).begin() as connection:
        connection.execute(delete(SignInFailure))  # the window passing, without waiting for it
    assert pool.get("/proxies").status_code == 200

    me = Api(pool_admin.base_url, bootstrap_token).get("/api/users/me").json()["users"][0]
    assert me["platformAdmin"] is True, "the first user of an empty store administers the pool"
    _, second_token = create_user(pool_admin.settings(), "second@example.test", None)
    me = Api(pool_admin.base_url, second_token).get("/api/users/me").json()["users"][0]
    assert me["platformAdmin"] is False

    # A second key of another user, revoked with the CLI: refused, and said so.
    other, stored = stored_key_user(pool_admin.database_url, "second@example.test")
    assert stored["prefix"] == other[:8] and stored["key_hash"] == hash_token(other)
    as_other = PoolApi(pool_admin.base_url, other)
    assert as_other.get("/proxies").status_code == 200
    revoked = run_admin_cli(pool_admin, "pool-key", "second@example.test", "--revoke", other[:8])
    assert revoked.returncode == 0 and "Revoked 1" in revoked.stdout, revoked.stderr
    refused_revoked = as_other.get("/proxies")
    assert_pool_error(refused_revoked, 401, "UNAUTHORIZED")
    assert "revoked" in refused_revoked.json()["error"]["message"]
    assert pool.get("/proxies").status_code == 200, "revoking one key leaves the others"
    unknown_user = run_admin_cli(pool_admin, "pool-key", "nobody@example.test")
    assert unknown_user.returncode != 0 and "no user" in unknown_user.stderr
    no_judge = run_admin_cli(pool_admin, "pool-check")  # no judge URL known outside `serve`
    assert no_judge.returncode == 1 and no_judge.stderr.startswith("error: "), no_judge.stderr
    assert "JUDGE_URL" in no_judge.stderr and "Traceback" not in no_judge.stderr

    # Every /pool path answers in seed 003's shape, known or not.
    assert_pool_error(pool.get("/nothing/here"), 404, "NOT_FOUND")
    assert_pool_error(refused["none"].get("/nothing"), 404, "NOT_FOUND")
    wrong_method = pool.request("DELETE", "/proxies")
    assert_pool_error(wrong_method, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in wrong_method.headers["Allow"]


def test_every_filter_and_sort_pages_in_the_expected_order(pool, rows):
    """Each filter selects exactly the matching proxies; each sort in both orders (and its
    default) walks the pages in the expected order, ties by id, unchecked proxies last."""
    since = utcnow() - timedelta(minutes=45)
    filters = {
        "status": [("active", lambda r: r["status"] == "active")],
        "protocol": [("socks5", lambda r: r["protocol"] == "socks5")],
        "anonymity": [("elite", lambda r: r.get("anonymity") == "elite")],
        "country": [("us", lambda r: r.get("country") == "US"),
                    ("JP", lambda r: r.get("country") == "JP")],
        "min_score": [("0.5", lambda r: r["score"] >= 0.5)],
        "max_latency_ms": [("174", lambda r: (r.get("avg_latency_ms") or math.inf) <= 174)],
        "min_uptime_pct": [("80.25", lambda r: (r.get("uptime_pct") or -1) >= 80.25)],
        "verified_within_minutes": [
            ("45", lambda r: (r.get("last_checked_at") or since) > since)
        ],
    }  # fmt: skip
    for name, cases in filters.items():
        for value, matches in cases:
            expected = {r["id"] for r in rows if matches(r)}
            assert expected and len(expected) < len(rows), (name, value)
            pages = walk(pool, {name: value}, limit=200)
            assert set(ids(pages)) == expected, (name, value)
            first = pool.get("/proxies", params={name: value, "limit": 1}).json()
            assert first["total_count"] == len(expected)

    for sort, (column, default_desc) in SORTS.items():
        for order, desc in [("asc", False), ("desc", True), (None, default_desc)]:
            params = {"sort": sort} | ({"order": order} if order else {})
            got = ids(walk(pool, params, limit=7))
            assert got == expected_order(rows, column, desc), (sort, order)
    assert ids(walk(pool, {}, limit=50)) == expected_order(rows, "score", True), "default sort"

    # Filters and a sort together, paged.
    params = {"status": "active", "min_score": "0.25", "sort": "latency", "order": "desc"}
    chosen = [r for r in rows if r["status"] == "active" and r["score"] >= 0.25]
    assert ids(walk(pool, params, limit=2)) == expected_order(chosen, "avg_latency_ms", True)


def test_pages_never_repeat_or_skip_while_proxies_are_inserted(pool_admin, pool, rows):
    """Walking every sort page by page while new proxies land anywhere in the order: each
    proxy that existed at the start appears exactly once."""
    for sort in SORTS:
        for order in ("asc", "desc"):
            existing = {r["id"] for r in rows}
            added = iter(range(1000))

            def insert_some(added=added):
                n = next(added)
                new = [
                    proxy_row(status="active", score=0.1 * (n % 11), avg_latency_ms=50.0 + n,
                              uptime_pct=float(n % 100), last_checked_at=minutes_ago(n % 90)),
                    proxy_row(status="unchecked", score=0.5),
                ]  # fmt: skip
                rows.extend(insert_proxies(pool_admin.database_url, new))

            got = ids(walk(pool, {"sort": sort, "order": order}, limit=6, between=insert_some))
            assert len(got) == len(set(got)), (sort, order, "a proxy appeared twice")
            assert existing <= set(got), (sort, order, "a proxy was skipped")


def test_bad_parameters_are_422s_naming_them(pool):
    """Each bad query parameter is a 422 VALIDATION_ERROR whose details name it; unknown
    parameters are ignored."""
    other_sort_cursor = pool.get("/proxies", params={"limit": 1}).json()["next_cursor"]
    assert other_sort_cursor
    cases = [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "eyJzIjoic2NvcmU6ZGVzYyxpZDpkZXNjIiwidiI6WyJ4IiwieSJdfQ"}, "cursor"),
        ({"cursor": "eyJzIjoic2NvcmU6ZGVzYyxpZDpkZXNjIiwidiI6WzAuNSwiXHUwMDAwIl19"}, "cursor"),
        ({"cursor": other_sort_cursor, "sort": "latency"}, "cursor"),
        ({"cursor": other_sort_cursor, "order": "asc"}, "cursor"),
        ({"status": "alive"}, "status"),
        ({"protocol": "ftp"}, "protocol"),
        ({"anonymity": "secret"}, "anonymity"),
        ({"sort": "speed"}, "sort"),
        ({"order": "up"}, "order"),
        ({"country": "USA"}, "country"),
        ({"country": "1A"}, "country"),
        ({"min_score": "2"}, "min_score"),
        ({"min_score": "nan"}, "min_score"),
        ({"min_score": "-0.1"}, "min_score"),
        ({"max_latency_ms": "fast"}, "max_latency_ms"),
        ({"max_latency_ms": "inf"}, "max_latency_ms"),
        ({"min_uptime_pct": "101"}, "min_uptime_pct"),
        ({"verified_within_minutes": "0"}, "verified_within_minutes"),
        ({"verified_within_minutes": "1.5"}, "verified_within_minutes"),
        ({"status": "active\x00"}, "status"),
    ]
    for params, field in cases:
        details = assert_pool_error(pool.get("/proxies", params=params), 422, "VALIDATION_ERROR")
        assert details["field"] == field, (params, details)
    assert pool.get("/proxies", params={"colour": "blue", "limit": "200"}).status_code == 200
    for proxy_id in ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "x\x00y"]:
        assert_pool_error(pool.get(f"/proxies/{proxy_id}"), 404, "NOT_FOUND")


def test_a_proxy_with_its_checks_and_the_pool_stats(pool_admin, pool, rows):
    """A proxy's record in seed 003's shape (credentials never shown) with its 20 newest
    checks, newest first; /stats/pool counts what the store holds; /stats/plugins lists
    the registries."""
    now = utcnow()
    [proxy] = insert_proxies(
        pool_admin.database_url,
        [proxy_row(status="active", protocol="socks5", anonymity="elite", country="DE",
                   exit_ip="203.0.113.200", score=0.87654321, avg_latency_ms=245.349,
                   uptime_pct=94.25, last_checked_at=now, username="joe",
                   password_key_id="k", password_ciphertext=b"sealed", tags={"provider": "dc"})],
    )  # fmt: skip
    rows.append(proxy)
    insert_checks(
        pool_admin.database_url,
        proxy["id"],
        [
            {"checker_name": f"check{n}", "stage": 1 + n % 3, "passed": n % 4 != 0,
             "latency_ms": 100.04 + n, "detail": f"detail {n}", "created_at": minutes_ago(n, now)}
            for n in range(25)
        ],
    )  # fmt: skip
    answer = pool.get(f"/proxies/{proxy['id']}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert list(body) == ["proxy", "recent_checks"]
    record = body["proxy"]
    assert list(record) == [*PROXY_KEYS, "has_credentials"] and record["has_credentials"] is True
    assert "joe" not in answer.text and "sealed" not in answer.text
    assert record["ip"] == proxy["host"] and record["port"] == proxy["port"]
    assert (record["score"], record["avg_latency_ms"], record["uptime_pct"]) == (
        0.8765,
        245.3,
        94.2,
    )
    assert record["tags"] == {"provider": "dc"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["last_checked_at"])
    checks = body["recent_checks"]
    assert [c["checker_name"] for c in checks] == [f"check{n}" for n in range(20)]
    assert list(checks[0]) == [
        "checker_name",
        "stage",
        "passed",
        "latency_ms",
        "detail",
        "created_at",
    ]
    assert checks[1] | {"created_at": None} == {
        "checker_name": "check1", "stage": 2, "passed": True, "latency_ms": 101.0,
        "detail": "detail 1", "created_at": None,
    }  # fmt: skip
    listed = pool.get("/proxies", params={"country": "de", "protocol": "socks5"}).json()
    assert proxy["id"] in [item["id"] for item in listed["items"]]
    assert all(
        "has_credentials" not in item for item in listed["items"] if item["id"] != proxy["id"]
    )

    stats = pool.get("/stats/pool")
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert list(body)[:11] == [
        "total_proxies", "by_status", "by_protocol", "by_anonymity", "avg_score",
        "avg_latency_ms", "sources_active", "sources_total", "last_scrape_at",
        "last_validation_at", "by_country",
    ]  # fmt: skip
    assert body["total_proxies"] == len(rows)

    def count(column, value):
        return sum(1 for r in rows if r.get(column) == value)

    assert body["by_status"] == {s: count("status", s) for s in ("unchecked", "active", "dead")}
    assert body["by_protocol"] == {
        p: count("protocol", p) for p in ("http", "https", "socks4", "socks5")
    }
    assert body["by_anonymity"] == {
        a: count("anonymity", a) for a in ("transparent", "anonymous", "elite")
    }
    assert body["avg_score"] == round(sum(r["score"] for r in rows) / len(rows), 4)
    latencies = [r["avg_latency_ms"] for r in rows if r.get("avg_latency_ms") is not None]
    assert body["avg_latency_ms"] == round(sum(latencies) / len(latencies), 1)
    countries = {r["country"] for r in rows if r.get("country")}
    top = sorted(countries, key=lambda c: (-count("country", c), c))[:20]
    assert body["by_country"] == {c: count("country", c) for c in top}
    assert body["last_validation_at"] == checks[0]["created_at"]
    assert (body["sources_active"], body["sources_total"], body["last_scrape_at"]) == (0, 0, None)

    plugins = pool.get("/stats/plugins").json()
    assert list(plugins) == ["parsers", "checkers", "notifiers"]
    assert {"plaintext", "json", "csv", "html"} <= {p["name"] for p in plugins["parsers"]}
    assert all(p["type"] == "SourceParser" for p in plugins["parsers"])
    assert {"tcp_connect", "http_anonymity"} <= {c["name"] for c in plugins["checkers"]}
    assert all(set(c) == {"name", "stage", "priority"} for c in plugins["checkers"])


def test_the_pools_health_needs_no_key_and_names_the_store(pool_admin):
    answer = Api(pool_admin.base_url, None).get("/pool/health")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    kind = "postgresql" if pool_admin.database_url.startswith("postgresql") else "sqlite"
    assert body["status"] == "healthy"
    assert body["store"] == {"kind": kind, "status": "connected"}
    assert body["postgres"] == ("connected" if kind == "postgresql" else "not used")
    assert body["redis"] == "not used" and body["version"]
