"""`POST /pool/proxies/test` (seed 003) against real loopback proxies (tests/pool_proxies.py)
and a real upstream on 127.0.0.1, allowed by PORTCULLIS_ALLOW_TARGETS: an http proxy (absolute
form, and CONNECT + TLS for an https URL) and a SOCKS5 proxy, both with sealed passwords, a
dead member, one whose password is wrong (its 407 is not reachable), one on an address the
pool may not use; the URL under the SSRF policy; bad bodies answered in seed 003's shape."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import update

from models.pool import PoolProxy
from models.ssrf_policy import parse_allowances
from models.store import make_session_factory
from pool.checkers.base import Member
from pool.errors import PoolError
from pool.reach import check_url, fetch_through
from tests.pool_proxies import ProxyFarm, dead_port, tls_files
from tests.pool_support import (
    PoolApi,
    assert_pool_error,
    insert_proxies,
    proxy_row,
    stored_key_user,
    with_credentials,
)
from tests.support import create_user, start_admin
from tests.upstream import RecordingUpstream

LOOPBACK = "127.0.0.0/8"
SOCKS_CREDENTIALS = ("reach-user", "reach-secret-pw")
HTTP_CREDENTIALS = ("reach-http", "reach-http-pw")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """An admin allowed to test loopback URLs through loopback members (its scheduler never
    checks them: no judge), an upstream with an https front, and three proxies."""
    directory = tmp_path_factory.mktemp("pool-reach")
    ca, cert, key = tls_files(directory)
    with RecordingUpstream() as upstream, ProxyFarm() as farm:
        server = start_admin(
            directory / "admin",
            PORTCULLIS_ALLOW_TARGETS=LOOPBACK,
            PORTCULLIS_POOL_ALLOW_PROXIES=LOOPBACK,
            PORTCULLIS_POOL_ALLOW_SOURCES=LOOPBACK,
            PORTCULLIS_POOL_JUDGE_URL="http://127.0.0.1:9/no-judge",
            SSL_CERT_FILE=str(ca),
        )
        try:
            tls_port = farm.tls_front(upstream.port, cert, key)
            http = farm.http("http", "elite", "127.0.0.61", credentials=HTTP_CREDENTIALS)
            socks = farm.socks("socks", "127.0.0.62", credentials=SOCKS_CREDENTIALS)
            strict = farm.http("strict", "elite", "127.0.0.66", credentials=HTTP_CREDENTIALS)
            # an http proxy spoken to over TLS (a fixed https:// egress proxy)
            fronted = farm.http("fronted", "elite", "127.0.0.1")
            tls_proxy_port = farm.tls_front(fronted.port, cert, key)
            yield server, upstream, tls_port, (http, socks, strict), (ca, tls_proxy_port)
        finally:
            server.stop()


def test_proxies_reach_a_local_url_and_a_dead_one_counts_against_the_rate(stack):
    server, upstream, tls_port, (http, socks, strict), _ = stack
    user = create_user(server, "reach@example.test")
    key, _ = stored_key_user(server.database_url, user.email)
    pool = PoolApi(server.base_url, key)
    rows = insert_proxies(
        server.database_url,
        [
            with_credentials(
                proxy_row(host=http.host, port=http.port, status="active", score=0.8),
                *HTTP_CREDENTIALS,
            ),
            with_credentials(
                proxy_row(
                    host=socks.host, port=socks.port, protocol="socks5", status="active", score=0.9
                ),
                *SOCKS_CREDENTIALS,
            ),
            proxy_row(host="127.0.0.63", port=dead_port("127.0.0.63"), status="active", score=0.7),
            # the wrong password: the proxy's own 407 is not the URL answering
            with_credentials(
                proxy_row(host=strict.host, port=strict.port, status="active", score=0.6),
                HTTP_CREDENTIALS[0],
                "not-the-password",
            ),
            # neither dead-and-checked nor leased proxies are asked
            proxy_row(host="127.0.0.64", port=1, status="dead", score=1.0),
            proxy_row(host="127.0.0.65", port=1, status="active", score=1.0, leased_until=4e9),
        ],
    )
    by_id = {row["id"]: row for row in rows}

    for url, path in (
        (f"{upstream.base_url}/reach/plain?x=1", "/reach/plain"),
        (f"https://127.0.0.1:{tls_port}/reach/tls", "/reach/tls"),
    ):
        seen = len(upstream.received)
        answer = pool.request("POST", "/proxies/test", json={"url": url, "timeout_seconds": 10})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert list(body) == ["url", "results", "success_rate"] and body["url"] == url
        results = {r["proxy_id"]: r for r in body["results"]}
        assert set(results) == set(list(by_id)[:4]), body  # the free active ones only
        for result in body["results"]:
            assert list(result) == [
                "proxy_id",
                "ip",
                "port",
                "reachable",
                "status_code",
                "latency_ms",
                "error",
            ]
            assert (result["ip"], result["port"]) == (
                by_id[result["proxy_id"]]["host"],
                by_id[result["proxy_id"]]["port"],
            )
        for proxy_id in (rows[0]["id"], rows[1]["id"]):  # http (CONNECT for https), socks5
            assert results[proxy_id]["reachable"] is True, results[proxy_id]
            assert results[proxy_id]["status_code"] == 200
            assert results[proxy_id]["error"] is None
            assert isinstance(results[proxy_id]["latency_ms"], int)
        dead = results[rows[2]["id"]]
        assert (dead["reachable"], dead["status_code"], dead["latency_ms"]) == (False, None, None)
        assert "refused" in dead["error"], dead
        refused = results[rows[3]["id"]]
        assert (refused["reachable"], refused["status_code"]) == (False, None)
        assert "407" in refused["error"], refused
        assert body["success_rate"] == 0.5
        arrived = upstream.wait_for(seen + 2)[seen:]
        assert [r.path for r in arrived] == [path, path]

    # filters narrow the proxies asked; nothing matching is a 404
    answer = pool.request(
        "POST", "/proxies/test", json={"url": upstream.base_url + "/", "protocol": "socks5"}
    )
    assert [r["proxy_id"] for r in answer.json()["results"]] == [rows[1]["id"]], answer.text
    answer = pool.request("POST", "/proxies/test", json={"url": upstream.base_url, "count": 1})
    assert len(answer.json()["results"]) == 1
    assert_pool_error(
        pool.request("POST", "/proxies/test", json={"url": upstream.base_url, "country": "zz"}),
        404,
        "NO_MATCHING_PROXY",
    )
    # a member on an address the operator does not allow is refused, never connected to
    with make_session_factory(server.engine)() as session:
        session.execute(
            update(PoolProxy).where(PoolProxy.id != rows[0]["id"]).values(status="dead")
        )
        session.commit()
    refused_member = proxy_row(host="169.254.169.254", port=80, status="active", score=0.1)
    insert_proxies(server.database_url, [refused_member])
    answer = pool.request("POST", "/proxies/test", json={"url": upstream.base_url})
    results = {r["proxy_id"]: r for r in answer.json()["results"]}
    assert results[refused_member["id"]]["reachable"] is False
    assert "PORTCULLIS_POOL_ALLOW_PROXIES" in results[refused_member["id"]]["error"]
    assert answer.json()["success_rate"] == 0.5


def test_urls_the_ssrf_policy_refuses_and_bad_bodies(stack):
    server, upstream, *_ = stack
    user = create_user(server, "reach-refused@example.test")
    key, _ = stored_key_user(server.database_url, user.email)
    pool = PoolApi(server.base_url, key)
    # (the URL is checked before any proxy is looked for: no proxies needed here)
    seen = len(upstream.received)
    # This admin allows 127.0.0.0/8 only: every other non-public address, by literal, by
    # IPv6 form or by a name resolving to one, is refused before any proxy is asked.
    for url in (
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://192.168.1.1:8080/",
        "http://[::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
        "http://no-such-host.invalid/",
    ):
        details = assert_pool_error(
            pool.request("POST", "/proxies/test", json={"url": url}), 422, "URL_NOT_ALLOWED"
        )
        assert details["field"] == "url", (url, details)
    assert len(upstream.received) == seen
    # without PORTCULLIS_ALLOW_TARGETS, loopback itself is refused, by literal or by name
    # (the admin's own check, run in-process with no allowance)
    for url in (upstream.base_url + "/", "http://localhost/"):
        with pytest.raises(PoolError) as refused:
            check_url(url, ())
        assert (refused.value.status, refused.value.code) == (422, "URL_NOT_ALLOWED")
        assert "PORTCULLIS_ALLOW_TARGETS" in refused.value.message

    for body, field in (
        ({}, "url"),
        ({"url": ""}, "url"),
        ({"url": "ftp://127.0.0.1/"}, "url"),
        ({"url": "http://user:pw@127.0.0.1/"}, "url"),
        ({"url": "http://127.0.0.1:99999/"}, "url"),
        ({"url": upstream.base_url, "count": 0}, "count"),
        ({"url": upstream.base_url, "count": 21}, "count"),
        ({"url": upstream.base_url, "count": "5"}, "count"),
        ({"url": upstream.base_url, "count": True}, "count"),
        ({"url": upstream.base_url, "count": 2.5}, "count"),
        ({"url": upstream.base_url, "timeout_seconds": 0}, "timeout_seconds"),
        ({"url": upstream.base_url, "timeout_seconds": 61}, "timeout_seconds"),
        ({"url": upstream.base_url, "protocol": "ftp"}, "protocol"),
        ({"url": upstream.base_url, "country": "USA"}, "country"),
        ({"url": upstream.base_url, "min_score": 2}, "min_score"),
        ({"url": upstream.base_url, "proxy": "x"}, "proxy"),
    ):
        details = assert_pool_error(
            pool.request("POST", "/proxies/test", json=body), 422, "VALIDATION_ERROR"
        )
        assert details["field"] == field, (body, details)
    assert_pool_error(pool.request("POST", "/proxies/test", json=[1]), 400, "INVALID_JSON")
    assert_pool_error(
        PoolApi(server.base_url, None).request(
            "POST", "/proxies/test", json={"url": upstream.base_url}
        ),
        401,
        "UNAUTHORIZED",
    )
    assert len(upstream.received) == seen


def test_fetch_through_speaks_tls_to_an_https_proxy(stack, monkeypatch):
    """`fetch_through` (the target form's "Test through egress") with `proxy_tls`: TLS to the
    proxy, the request in absolute form inside it, or a CONNECT tunnel with the URL's own TLS
    inside that; without it, a TLS proxy does not answer."""
    _, upstream, tls_port, _, (ca, proxy_port) = stack
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the test process's CAs: the throwaway one
    allowed = parse_allowances(LOOPBACK)
    urls = (upstream.base_url + "/via-tls/plain", f"https://127.0.0.1:{tls_port}/via-tls/tunnel")
    for url in urls:
        seen = len(upstream.received)
        member = Member("fixed", "127.0.0.1", proxy_port, "https")
        result = fetch_through(
            member, url, 10, allowed_targets=allowed, allowed_proxies=allowed, proxy_tls=True
        )
        assert (result["reachable"], result["status_code"], result["error"]) == (True, 200, None)
        assert upstream.wait_for(seen + 1)[seen].path == urlsplit(url).path
    member = Member("fixed", "127.0.0.1", proxy_port, "https")
    plain = fetch_through(member, urls[0], 5, allowed_targets=allowed, allowed_proxies=allowed)
    assert plain["reachable"] is False and plain["error"], plain
