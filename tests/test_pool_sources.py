"""The pool's sources end to end: a real admin, a real source server on 127.0.0.1, the API
over HTTP with `pp_` keys (seed 003's shapes and errors), the store on both engines."""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from models.crypto import KeyRing
from models.pool import PoolProxy, PoolSource
from models.ssrf_policy import parse_allowances
from models.store import make_engine, make_session_factory
from pool.errors import PoolError
from pool.fetch import fetch_source
from pool.passwords import open_password
from pool.scrape import candidates_of, preview
from pool.sources import next_scrape
from tests.pool_source_server import MESSY_EXPECTED, MESSY_LIST, SourceServer
from tests.pool_source_support import pool_error, pool_user
from tests.pool_support import PoolApi
from tests.support import TEST_MASTER_KEYS, AdminServer, start_admin

LOOPBACK = "127.0.0.0/8"
MAX_BYTES = 300_000
QUIET = {  # no scheduler tick of another test's making: checks and scrapes only when asked
    "PORTCULLIS_POOL_CHECK_INTERVAL_MS": "3600000",
    "PORTCULLIS_POOL_SCHEDULE_TICK_MS": "3600000",
    # The check cycle stops before claiming any proxy (its first tick runs at start).
    "PORTCULLIS_POOL_JUDGE_URL": "http://127.0.0.1:9/no-judge",
}


def store_sessions(server: AdminServer):
    return make_session_factory(make_engine(server.database_url))


@pytest.fixture(scope="module")
def source_server():
    with SourceServer() as server:
        yield server


@pytest.fixture(scope="module")
def pool_admin(tmp_path_factory):
    server = start_admin(
        tmp_path_factory.mktemp("pool-sources"),
        PORTCULLIS_POOL_ALLOW_SOURCES=LOOPBACK,
        PORTCULLIS_POOL_SOURCE_MAX_BYTES=str(MAX_BYTES),
        PORTCULLIS_POOL_SOURCE_TIMEOUT_MS="20000",
        **QUIET,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def platform_admin(pool_admin) -> PoolApi:
    return pool_user(pool_admin, "root@pool.test", platform_admin=True)


@pytest.fixture(scope="module")
def reader(pool_admin, platform_admin) -> PoolApi:
    return pool_user(pool_admin, "reader@pool.test")


def test_sources_story(pool_admin, platform_admin, reader, source_server):
    """Add sources by auto-detect, scrape (new, then updated), read, change, delete."""
    messy_url = source_server.serve("/story/messy.txt", MESSY_LIST)
    pool_error(PoolApi(pool_admin.base_url, None).request("GET", "/sources"), 401, "UNAUTHORIZED")
    pool_error(
        PoolApi(pool_admin.base_url, "pp_" + "x" * 48).request("GET", "/sources"),
        401,
        "UNAUTHORIZED",
    )

    created = platform_admin.request("POST", "/sources", json={"url": messy_url})
    assert created.status_code == 201, created.text
    source = created.json()
    assert list(source)[:8] == [
        "id",
        "url",
        "parser_name",
        "cron_schedule",
        "default_protocol",
        "is_active",
        "last_scraped_at",
        "created_at",
    ]
    assert source["parser_name"] == "plaintext"  # auto-detected from the answer
    assert source["cron_schedule"] == "*/30 * * * *"
    assert source["default_protocol"] == "http" and source["is_active"] is True
    assert source["last_scraped_at"] is None and source["next_scrape_at"].endswith("Z")
    source_id = source["id"]

    # Each format is detected from its content.
    formats = {
        "json": ('{"data": [{"ip": "203.0.113.40", "port": 80}]}', "application/json"),
        "csv": ("ip,port,protocol\n203.0.113.41,81,http\n", "text/csv"),
        "html": (
            "<html><table><tr><th>IP</th><th>Port</th></tr>"
            "<tr><td>203.0.113.42</td><td>82</td></tr></table></html>",
            "text/html",
        ),
    }
    for name, (body, content_type) in formats.items():
        url = source_server.serve(f"/story/list.{name}", body, content_type)
        made = platform_admin.request(
            "POST", "/sources", json={"url": url, "cron_schedule": "0 * * * *"}
        )
        assert made.status_code == 201, made.text
        assert made.json()["parser_name"] == name

    # A reader reads, but changes nothing.
    assert reader.request("GET", "/sources").status_code == 200
    for method, path, body in [
        ("POST", "/sources", {"url": messy_url, "parser_name": "plaintext"}),
        ("PATCH", f"/sources/{source_id}", {"is_active": False}),
        ("DELETE", f"/sources/{source_id}", None),
        ("POST", f"/sources/{source_id}/scrape", None),
    ]:
        pool_error(reader.request(method, path, json=body), 403, "FORBIDDEN")

    # Scrape: everything new, then everything seen again, then one more line.
    first = platform_admin.request("POST", f"/sources/{source_id}/scrape")
    assert first.status_code == 200, first.text
    result = first.json()
    assert list(result) == [
        "source_id",
        "proxies_discovered",
        "proxies_new",
        "proxies_updated",
        "duration_ms",
    ]
    count = len(MESSY_EXPECTED)
    assert (result["source_id"], result["proxies_discovered"]) == (source_id, count)
    assert (result["proxies_new"], result["proxies_updated"]) == (count, 0)
    assert isinstance(result["duration_ms"], int) and result["duration_ms"] >= 0
    second = platform_admin.request("POST", f"/sources/{source_id}/scrape").json()
    assert (second["proxies_new"], second["proxies_updated"]) == (0, count)
    new_password = MESSY_LIST.replace(
        "alice:s3cr%40t@", "alice2:N3wSecretForAlice@"
    )  # new credentials
    source_server.serve("/story/messy.txt", new_password + "203.0.113.99:9999\n")
    third = platform_admin.request("POST", f"/sources/{source_id}/scrape").json()
    assert (third["proxies_discovered"], third["proxies_new"]) == (count + 1, 1)
    assert third["proxies_updated"] == count

    with store_sessions(pool_admin)() as session:
        rows = session.scalars(select(PoolProxy).where(PoolProxy.source_id == source_id)).all()
        assert {(p.protocol, p.host, p.port) for p in rows} == {
            (protocol or "http", host, port) for protocol, host, port in MESSY_EXPECTED
        } | {("http", "203.0.113.99", 9999)}  # the default protocol where a line names none
        assert {p.status for p in rows} == {"unchecked"} and {p.next_check_at for p in rows} == {0}
        alice = next(p for p in rows if p.host == "203.0.113.14")
        assert alice.username == "alice2"  # the list's newest credentials, sealed
        assert open_password(KeyRing.parse(TEST_MASTER_KEYS), alice) == "N3wSecretForAlice"
    stored = pool_admin.store_bytes()
    assert b"N3wSecretForAlice" not in stored and b"hunter2" not in stored  # passwords only sealed

    # The list of sources: seed page, filters, cursor pages without gaps or repeats.
    listed = reader.request("GET", "/sources").json()
    assert listed["total_count"] == 4 and listed["next_cursor"] is None
    mine = next(s for s in listed["items"] if s["id"] == source_id)
    assert mine["last_scraped_at"].endswith("Z") and mine["last_result"] == third
    seen, cursor = [], None
    while True:
        page = reader.request(
            "GET", "/sources", params={"limit": 1, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(s["id"] for s in listed["items"])

    # Changes: only the fields given; inactive sources are not scheduled.
    changed = platform_admin.request(
        "PATCH", f"/sources/{source_id}", json={"cron_schedule": "15 3 * * 1", "is_active": False}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["cron_schedule"] == "15 3 * * 1"
    assert changed.json()["is_active"] is False and changed.json()["next_scrape_at"] is None
    assert changed.json()["parser_name"] == "plaintext"
    json_url = source_server.url("/story/list.json")  # a new URL, its parser detected again
    moved = platform_admin.request(
        "PATCH", f"/sources/{source_id}", json={"url": json_url, "parser_name": None}
    ).json()
    assert (moved["url"], moved["parser_name"]) == (json_url, "json")
    reverted = {"url": messy_url, "parser_name": "plaintext"}
    assert platform_admin.request("PATCH", f"/sources/{source_id}", json=reverted).ok
    inactive = reader.request("GET", "/sources", params={"is_active": "false"}).json()
    assert [s["id"] for s in inactive["items"]] == [source_id]
    back = platform_admin.request("PATCH", f"/sources/{source_id}", json={"is_active": True}).json()
    assert back["next_scrape_at"].endswith("Z")

    # Deleting keeps the proxies.
    assert platform_admin.request("DELETE", f"/sources/{source_id}").status_code == 204
    pool_error(platform_admin.request("DELETE", f"/sources/{source_id}"), 404, "NOT_FOUND")
    with store_sessions(pool_admin)() as session:
        kept = session.scalars(
            select(PoolProxy).where(PoolProxy.host.in_(["203.0.113.14", "203.0.113.99"]))
        ).all()
        assert len(kept) == 2 and {p.source_id for p in kept} == {None}
        assert session.get(PoolSource, source_id) is None


def test_bad_input_and_failing_sources(pool_admin, platform_admin, source_server):
    """Every bad field a 422 naming it; every failing source a clear error, never a 500."""
    good = source_server.serve("/bad/good.txt", "203.0.113.50:80\n")
    base = {"url": good, "parser_name": "plaintext"}
    bad_bodies = {
        "url": [
            {"url": None},
            {"url": ""},
            {"url": "ftp://127.0.0.1/x"},
            {"url": "http://"},
            {"url": "http://h:99999/"},
            {"url": "http://a b/"},
            {"url": 5},
            {"url": "http://x/" + "a" * 2100},
        ],
        "parser_name": [{"parser_name": "yaml"}, {"parser_name": 3}],
        "cron_schedule": [
            {"cron_schedule": "* * *"},
            {"cron_schedule": "61 * * * *"},
            {"cron_schedule": ""},
            {"cron_schedule": 5},
            {"cron_schedule": "* * * * * *"},
            {"cron_schedule": "a b c d e"},
            {"cron_schedule": "0 0 31 2 *"},  # never fires
            {"cron_schedule": "0 0 * * 8"},
        ],
        "default_protocol": [{"default_protocol": "ftp"}, {"default_protocol": None}],
        "is_active": [{"is_active": "yes"}, {"is_active": 1}],
        "colour": [{"colour": "blue"}],
    }
    existing = platform_admin.request("POST", "/sources", json=base).json()
    for field, bodies in bad_bodies.items():
        for body in bodies:
            error = pool_error(
                platform_admin.request("POST", "/sources", json={**base, **body}),
                422,
                "VALIDATION_ERROR",
            )
            assert error["details"]["field"] == field, (body, error)
            if field != "url":  # a PATCH of one field is validated alike
                patched = platform_admin.request("PATCH", f"/sources/{existing['id']}", json=body)
                assert pool_error(patched, 422, "VALIDATION_ERROR")["details"]["field"] == field
    for params, field in [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"is_active": "maybe"}, "is_active"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJzIjoieCIsInYiOltdfQ"}, "cursor"),
    ]:
        error = pool_error(
            platform_admin.request("GET", "/sources", params=params), 422, "VALIDATION_ERROR"
        )
        assert error["details"]["field"] == field, params
    hostile = {  # raw bodies: never a 500, always seed 003's shape
        b"{nope": 400,
        b"": 400,
        b"[]": 400,
        b'"x"': 400,
        b"[" * 100 + b"]" * 100: 400,  # deeper than the JSON nesting limit
        rb'{"url": "http://h/\u0000"}': 422,
        b"{" + b'"a":1,' * 400_000 + b'"b":2}': 413,  # past the admin's body limit
    }
    for raw, status in hostile.items():
        for method, path in [("POST", "/sources"), ("PATCH", f"/sources/{existing['id']}")]:
            answer = platform_admin.request(
                method, path, data=raw, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == status, (method, raw[:20], answer.text)
            assert list(answer.json()) == ["error"], answer.text
    unknown = str(uuid.uuid4())
    for method, path in [
        ("PATCH", f"/sources/{unknown}"),
        ("DELETE", f"/sources/{unknown}"),
        ("POST", f"/sources/{unknown}/scrape"),
    ]:
        pool_error(platform_admin.request(method, path, json={}), 404, "NOT_FOUND")

    # Auto-detect finds nothing: 422 naming parser_name; nothing is created.
    prose = source_server.serve("/bad/prose.html", "<html><p>Back soon</p></html>", "text/html")
    error = pool_error(
        platform_admin.request("POST", "/sources", json={"url": prose}), 422, "NO_PARSER_MATCHED"
    )
    assert error["details"]["field"] == "parser_name"

    # Failing sources, at creation (auto-detect) and at scrape time alike.
    failing = {
        "/bad/image.png": (
            source_server.serve("/bad/image.png", b"\x89PNG....", "image/png"),
            502,
            "SOURCE_CONTENT_TYPE",
        ),
        "/bad/blob": (
            source_server.serve("/bad/blob", b"1.2.3.4:80", "application/octet-stream"),
            502,
            "SOURCE_CONTENT_TYPE",
        ),
        "/bad/missing": (source_server.url("/bad/missing"), 502, "SOURCE_UNREACHABLE"),
        "/bad/huge.txt": (
            source_server.oversized("/bad/huge.txt", MAX_BYTES * 3),
            502,
            "SOURCE_TOO_LARGE",
        ),
        "/bad/closed": ("http://127.0.0.1:9/closed", 502, "SOURCE_UNREACHABLE"),
    }
    for url, status, code in failing.values():
        pool_error(platform_admin.request("POST", "/sources", json={"url": url}), status, code)
        made = platform_admin.request("POST", "/sources", json={"url": url, "parser_name": "json"})
        assert made.status_code == 201, made.text
        scraped = platform_admin.request("POST", f"/sources/{made.json()['id']}/scrape")
        error = pool_error(scraped, status, code)
        assert "Traceback" not in error["message"]
        listed = platform_admin.request("GET", "/sources", params={"limit": 200}).json()["items"]
        assert (
            next(s for s in listed if s["id"] == made.json()["id"])["last_error"]
            == error["message"]
        )
    # A parser named by hand that finds nothing in a non-empty answer.
    wrong = platform_admin.request("POST", "/sources", json={"url": prose, "parser_name": "csv"})
    pool_error(
        platform_admin.request("POST", f"/sources/{wrong.json()['id']}/scrape"),
        422,
        "SOURCE_UNPARSEABLE",
    )
    # Source URLs carrying credentials are shown masked.
    secret = platform_admin.request(
        "POST", "/sources", json={**base, "url": good.replace("http://", "http://user:tok3n@")}
    ).json()
    assert "tok3n" not in secret["url"] and "***" in secret["url"]
    scraped = platform_admin.request("POST", f"/sources/{secret['id']}/scrape")
    assert scraped.status_code == 200, scraped.text
    sent = source_server.authorizations["/bad/good.txt"]
    assert sent == "Basic " + base64.b64encode(b"user:tok3n").decode()  # as curl would


def test_preview(settings, source_server):
    """The web's add form: what a URL would give, nothing stored."""
    allowed = replace(settings, pool_allow_sources=parse_allowances(LOOPBACK))
    url = source_server.serve("/preview/list.json", '{"proxies": ["203.0.113.70:80"]}')
    assert preview(allowed, url, None) == {
        "parser_name": "json",
        "proxies_found": 1,
        "sample": [{"ip": "203.0.113.70", "port": 80, "protocol": "http"}],
    }
    messy = source_server.serve("/preview/messy.txt", MESSY_LIST)
    shown = preview(allowed, messy, "plaintext", default_protocol="socks5")
    assert shown["proxies_found"] == len(MESSY_EXPECTED) and len(shown["sample"]) == 10
    assert shown["sample"][0] == {"ip": "203.0.113.10", "port": 8080, "protocol": "socks5"}
    failures = [
        (lambda: preview(allowed, "ftp://x/", None), "VALIDATION_ERROR"),
        (lambda: preview(allowed, messy, "yaml"), "VALIDATION_ERROR"),
        (lambda: preview(allowed, messy, "json"), "SOURCE_UNPARSEABLE"),
        (lambda: preview(settings, messy, None), "SOURCE_NOT_ALLOWED"),
    ]
    for call, code in failures:
        with pytest.raises(PoolError) as caught:
            call()
        assert caught.value.code == code


def test_fetch_time_bounds(settings, source_server):
    """A source that never answers, or answers a line at a time forever, is cut off at
    `pool_source_timeout_ms` for the whole answer (not per read)."""
    quick = replace(
        settings, pool_allow_sources=parse_allowances(LOOPBACK), pool_source_timeout_ms=400
    )
    source_server.hold("/slow/never.txt")
    try:
        for url in (source_server.url("/slow/never.txt"), source_server.drip("/slow/drip.txt")):
            with pytest.raises(PoolError) as caught:
                fetch_source(quick, url)
            assert (caught.value.status, caught.value.code) == (502, "SOURCE_UNREACHABLE")
            assert "in time" in caught.value.message
    finally:
        source_server.release("/slow/never.txt")


@pytest.mark.sqlite_only  # a pure function: the same on both stores
def test_too_many_candidates():
    many = "".join(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}:80\n" for n in range(100_001))
    with pytest.raises(PoolError) as caught:
        candidates_of(many, "plaintext", "http")
    assert (caught.value.status, caught.value.code) == (422, "SOURCE_TOO_MANY")


def test_loopback_sources_need_the_allowance(tmp_path, source_server):
    """Without PORTCULLIS_POOL_ALLOW_SOURCES the admin refuses a loopback source's URL."""
    url = source_server.serve("/ssrf/list.txt", "203.0.113.60:80\n")
    server = start_admin(tmp_path / "no-allowance", **QUIET)
    try:
        api = pool_user(server, "root@ssrf.test", platform_admin=True)
        error = pool_error(
            api.request("POST", "/sources", json={"url": url}), 422, "SOURCE_NOT_ALLOWED"
        )
        assert error["details"]["field"] == "url"
        assert "PORTCULLIS_POOL_ALLOW_SOURCES" in error["message"]
        made = api.request("POST", "/sources", json={"url": url, "parser_name": "plaintext"})
        scraped = api.request("POST", f"/sources/{made.json()['id']}/scrape")
        pool_error(scraped, 422, "SOURCE_NOT_ALLOWED")
        assert source_server.hits.get("/ssrf/list.txt", 0) == 0  # never asked
    finally:
        server.stop()


@pytest.mark.sqlite_only  # a pure function: the same on both stores
def test_cron_weekdays_as_crontab_numbers_them():
    """0 and 7 are Sunday as in crontab (APScheduler 3 alone would read 0 as Monday)."""
    monday_noon = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    expected = {
        "0 0 * * 1": "Mon 2026-12-07",  # this Monday's midnight has passed
        "0 13 * * 1": "Mon 2026-11-30",
        "0 0 * * 0": "Sun 2026-12-06",
        "0 0 * * 7": "Sun 2026-12-06",
        "0 0 * * sun": "Sun 2026-12-06",
        "0 0 * * 2-4": "Tue 2026-12-01",
        "0 0 * * 5-7": "Fri 2026-12-04",
        "0 0 * * */3": "Wed 2026-12-02",  # sun, wed, sat
        "*/15 * * * *": "Mon 2026-11-30",
    }
    for expression, day in expected.items():
        fire = next_scrape(expression, monday_noon)
        assert fire.strftime("%a %Y-%m-%d") == day, expression
