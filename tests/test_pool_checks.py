"""The pool's checkers against small real proxies on loopback (tests/pool_proxies.py), the
admin's own judge, and the real store: one cycle grades every member; claims keep two
processes from checking one proxy twice; loopback members need the operator's allowance."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update

from models import User
from models.base import utcnow
from models.crypto import KeyRing
from models.pool import PoolCheck, PoolProxy, new_uuid
from models.settings import Settings
from models.ssrf_policy import parse_allowances
from models.store import make_engine, make_session_factory
from pool.check_cycle import run_check_cycle
from pool.checkers.grading import grade
from pool.errors import PoolError
from pool.keys import issue_key
from pool.passwords import seal_password
from tests.pool_proxies import ProxyFarm, dead_port, tls_files
from tests.support import ROOT, TEST_MASTER_KEYS, start_admin

LOOPBACK = "127.0.0.0/8"
KEY_RING = KeyRing.parse(TEST_MASTER_KEYS)
FAR_FUTURE = 1e12
NO_JUDGE = "http://127.0.0.1:9/no-judge"  # the discard port: nothing answers there


@pytest.fixture(scope="module")
def pool_admin(tmp_path_factory):
    """An admin whose members may be on loopback. Its own scheduler never checks them (its
    judge URL answers nothing, so its cycles stop before claiming): the tests run cycles
    themselves, with the judge URL set to this admin's judge."""
    server = start_admin(
        tmp_path_factory.mktemp("pool-checks"),
        PORTCULLIS_POOL_ALLOW_PROXIES=LOOPBACK,
        PORTCULLIS_POOL_ALLOW_SOURCES=LOOPBACK,
        PORTCULLIS_POOL_JUDGE_URL=NO_JUDGE,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def farm():
    with ProxyFarm() as proxies:
        yield proxies


@pytest.fixture(scope="module")
def sessions(pool_admin):
    engine = make_engine(pool_admin.database_url)
    yield make_session_factory(engine)
    engine.dispose()


def cycle_settings(admin, allow: str = LOOPBACK) -> Settings:
    return admin.settings(
        pool_allow_proxies=parse_allowances(allow),
        pool_judge_url=admin.base_url + "/pool/judge",
        pool_check_timeout_ms=5000,
    )


def add_members(sessions, *members, credentials=None) -> list[str]:
    """Store members (`Listening`s, or (host, port, protocol)) due at once; the others wait."""
    ids = []
    with sessions() as session:
        session.execute(update(PoolProxy).values(next_check_at=FAR_FUTURE))
        for member in members:
            host, port, protocol = (
                (member.host, member.port, member.protocol) if hasattr(member, "host") else member
            )
            row = PoolProxy(
                id=new_uuid(), host=host, port=port, protocol=protocol, next_check_at=0.0
            )
            user, password = (credentials or {}).get(getattr(member, "name", None), (None, None))
            if user:
                sealed = seal_password(KEY_RING, row.id, password)
                row.username = user
                row.password_key_id, row.password_ciphertext = sealed.key_id, sealed.ciphertext
            session.add(row)
            ids.append(row.id)
        session.commit()
    return ids


def proxies_by_id(sessions, ids) -> dict[str, PoolProxy]:
    with sessions() as session:
        rows = session.scalars(select(PoolProxy).where(PoolProxy.id.in_(ids))).all()
        session.expunge_all()
    return {row.id: row for row in rows}


def checks_of(sessions, proxy_id) -> list[PoolCheck]:
    with sessions() as session:
        return list(
            session.scalars(
                select(PoolCheck).where(PoolCheck.proxy_id == proxy_id).order_by(PoolCheck.stage)
            )
        )


def pool_key(sessions) -> str:
    """A `pp_` key of a new user (made in-process: the CLI costs seconds per call)."""
    with sessions() as session:
        user = User(email="pool-reader@example.test", name="Pool Reader")
        session.add(user)
        session.flush()
        _, raw = issue_key(session, user, "tests")
        session.commit()
    return raw


def test_one_cycle_grades_every_member(pool_admin, farm, sessions):
    """Transparent, anonymous, elite (with a password), a faker, SOCKS5 (with a password),
    SOCKS4 and a dead port, each leaving by its own loopback address: one cycle, the right
    grades."""
    members = {
        "transparent": farm.http("transparent", "transparent", "127.0.0.2"),
        "anonymous": farm.http("anonymous", "anonymous", "127.0.0.3"),
        "elite": farm.http("elite", "elite", "127.0.0.4", "https", ("eve", "s3cret")),
        "faker": farm.http("faker", "faker", "127.0.0.5"),
        "socks5": farm.socks("socks5", "127.0.0.6", "socks5", ("sam", "pa55")),
        "socks4": farm.socks("socks4", "127.0.0.8", "socks4"),
    }
    dead = ("127.0.0.7", dead_port("127.0.0.7"), "http")
    credentials = {"elite": ("eve", "s3cret"), "socks5": ("sam", "pa55")}
    ids = add_members(sessions, *members.values(), dead, credentials=credentials)
    names = dict(zip(ids, [*members, "dead"], strict=True))

    result = run_check_cycle(cycle_settings(pool_admin), KEY_RING)

    assert result == {"checked": 7, "active": 5, "dead": 2, "removed": 0}
    graded = {names[i]: row for i, row in proxies_by_id(sessions, ids).items()}
    expected = {
        # name: (status, anonymity, exit address, checkers in order)
        "transparent": ("active", "transparent", "127.0.0.2", 3),
        "anonymous": ("active", "anonymous", "127.0.0.3", 3),
        "elite": ("active", "elite", "127.0.0.4", 3),
        "socks5": ("active", "elite", "127.0.0.6", 2),
        "socks4": ("active", "elite", "127.0.0.8", 2),
        "faker": ("dead", None, None, 2),
        "dead": ("dead", None, None, 1),
    }
    for name, (status, anonymity, exit_ip, checks) in expected.items():
        row = graded[name]
        assert (row.status, row.anonymity, row.exit_ip) == (status, anonymity, exit_ip), name
        assert row.country is None  # loopback has no country
        assert row.check_claimed_until is None
        assert len(checks_of(sessions, row.id)) == checks, name
        if status == "active":
            assert 0 < row.score <= 1 and row.uptime_pct == 100 and row.avg_latency_ms > 0
            assert all(check.passed for check in checks_of(sessions, row.id))
        else:
            assert row.score == 0 and row.uptime_pct == 0 and row.dead_since is not None

    faker = checks_of(sessions, graded["faker"].id)
    assert [(c.checker_name, c.passed) for c in faker] == [
        ("tcp_connect", True),
        ("http_anonymity", False),
    ]
    assert "judge answer faked or cached" in faker[1].detail
    assert "connection refused" in checks_of(sessions, graded["dead"].id)[0].detail

    # The history through the pool API, newest first, in seed 003's shape.
    key = pool_key(sessions)
    detail = requests.get(
        f"{pool_admin.base_url}/pool/proxies/{graded['faker'].id}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["proxy"]["status"] == "dead" and body["proxy"]["score"] == 0
    assert {c["checker_name"] for c in body["recent_checks"]} == {"tcp_connect", "http_anonymity"}
    assert set(body["recent_checks"][0]) == {
        "checker_name",
        "stage",
        "passed",
        "latency_ms",
        "detail",
        "created_at",
    }

    # Nothing is due any more: a second cycle checks nothing.
    again = run_check_cycle(cycle_settings(pool_admin), KEY_RING)
    assert again["checked"] == 0


def test_an_https_judge(pool_admin, farm, sessions, tmp_path, monkeypatch):
    """With an https judge (here the admin's judge behind a TLS front with a throwaway CA),
    the http checks go through CONNECT tunnels and SOCKS ones over TLS; a member inside a
    tunnel cannot add headers, so even a transparent one grades elite."""
    ca, cert, key = tls_files(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the system CAs of the checker: ours
    port = int(pool_admin.base_url.rsplit(":", 1)[1])
    judge = f"https://127.0.0.1:{farm.tls_front(port, cert, key)}/pool/judge"
    members = {
        "transparent": farm.http("tls-transparent", "transparent", "127.0.0.14"),
        "socks5": farm.socks("tls-socks5", "127.0.0.15", "socks5"),
    }
    ids = add_members(sessions, *members.values())
    settings = dataclasses.replace(cycle_settings(pool_admin), pool_judge_url=judge)

    assert run_check_cycle(settings, KEY_RING)["active"] == 2

    rows = proxies_by_id(sessions, ids)
    for (name, member), proxy_id in zip(members.items(), ids, strict=True):
        row = rows[proxy_id]
        assert (row.status, row.anonymity, row.exit_ip) == ("active", "elite", member.host), name
        checks = checks_of(sessions, proxy_id)
        assert all(c.passed for c in checks) and len(checks) == (3 if name != "socks5" else 2)


def test_two_processes_never_check_one_proxy_twice(pool_admin, farm, sessions):
    """Two `run_admin.py pool-check` at once over 24 members, five claimed at a time each."""
    members = [farm.http(f"e{n}", "elite", "127.0.0.9") for n in range(24)]
    ids = add_members(sessions, *members)
    env = {
        **pool_admin.env,
        "PORTCULLIS_POOL_JUDGE_URL": pool_admin.base_url + "/pool/judge",
        "PORTCULLIS_POOL_CHECK_CONCURRENCY": "5",
    }
    runs = [
        subprocess.Popen(
            [sys.executable, "run_admin.py", "pool-check"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    checked = [int(re.search(r"(\d+) checked", out).group(1)) for out, _ in outputs]
    assert sum(checked) == len(ids)
    for proxy_id in ids:
        assert [c.checker_name for c in checks_of(sessions, proxy_id)] == [
            "tcp_connect",
            "http_anonymity",
            "https_connect",
        ]
    assert {row.status for row in proxies_by_id(sessions, ids).values()} == {"active"}


def test_refused_and_silent_members_fail(pool_admin, farm, sessions):
    """A scraped list must not make the admin connect into its own network; a member that
    never answers fails on the per-check timeout."""
    inside = [  # (the address class the refusal names, the member)
        ("loopback", farm.http("inside", "elite", "127.0.0.10")),
        ("loopback", ("localhost", 3128, "http")),
        ("loopback", ("::ffff:127.0.0.1", 3128, "socks5")),
        ("link-local", ("169.254.169.254", 80, "http")),  # the cloud metadata address
        ("private", ("10.0.0.1", 1080, "socks4")),
    ]
    ids = add_members(sessions, *(member for _, member in inside))
    result = run_check_cycle(cycle_settings(pool_admin, allow=""), KEY_RING)
    assert result["checked"] == result["dead"] == len(inside)
    for (word, _), proxy_id in zip(inside, ids, strict=True):
        (check,) = checks_of(sessions, proxy_id)
        assert (check.checker_name, check.passed) == ("tcp_connect", False)
        assert check.detail.startswith("refused:"), check.detail
        assert f"({word})" in check.detail and "PORTCULLIS_POOL_ALLOW_PROXIES" in check.detail

    (silent_id,) = add_members(sessions, farm.tarpit("silent", "127.0.0.11"))
    quick = dataclasses.replace(cycle_settings(pool_admin), pool_check_timeout_ms=500)
    assert run_check_cycle(quick, KEY_RING)["dead"] == 1
    checks = checks_of(sessions, silent_id)
    assert [(c.checker_name, c.passed, c.detail) for c in checks] == [
        ("tcp_connect", True, "TCP connect OK"),
        ("http_anonymity", False, "timed out"),
    ]


def test_a_cached_answer_fails_and_a_dead_judge_marks_nobody_dead(pool_admin, farm, sessions):
    """A member replaying the judge's earlier answer fails on the nonce (its verdict falls at
    once); a judge that does not answer stops the cycle before anything is claimed."""
    (cacher_id,) = add_members(sessions, farm.http("cacher", "cacher", "127.0.0.13"))
    assert run_check_cycle(cycle_settings(pool_admin), KEY_RING)["active"] == 1
    first = proxies_by_id(sessions, [cacher_id])[cacher_id]

    with sessions() as session:  # due again
        session.execute(
            update(PoolProxy).where(PoolProxy.id == cacher_id).values(next_check_at=0.0)
        )
        session.commit()
    dead_judge = dataclasses.replace(
        cycle_settings(pool_admin),
        pool_judge_url=f"http://127.0.0.1:{dead_port('127.0.0.1')}/pool/judge",
    )
    for settings, code in ((dead_judge, "JUDGE_UNREACHABLE"), (no_judge(pool_admin), None)):
        with pytest.raises(PoolError) as refused:
            run_check_cycle(settings, KEY_RING)
        assert refused.value.code == (code or "JUDGE_UNKNOWN")
    assert proxies_by_id(sessions, [cacher_id])[cacher_id].check_claimed_until is None

    assert run_check_cycle(cycle_settings(pool_admin), KEY_RING)["checked"] == 1
    second = proxies_by_id(sessions, [cacher_id])[cacher_id]
    assert second.score <= first.score / 2 and second.consecutive_failures == 1
    latest = [c for c in checks_of(sessions, cacher_id) if c.checker_name == "http_anonymity"]
    assert [c.passed for c in latest] == [True, False]
    assert "judge answer faked or cached" in latest[1].detail


def no_judge(admin) -> Settings:
    return dataclasses.replace(cycle_settings(admin), pool_judge_url=None, public_url=None)


@pytest.mark.parametrize(
    ("headers", "remote", "expected"),
    [
        ({"X-Forwarded-For": "10.1.2.3, 192.0.2.10"}, "198.51.100.1", "transparent"),
        ({"Forwarded": 'for="[2001:db8::7]:4711"'}, "198.51.100.1", "transparent"),
        ({"X-Real-Ip": "192.0.2.10:5555"}, "198.51.100.1", "transparent"),
        ({"X-Something": "via 192.0.2.10"}, "198.51.100.1", "transparent"),
        ({}, "192.0.2.10", "transparent"),
        ({}, "::ffff:192.0.2.99", "elite"),
        ({"X-Forwarded-For": "192.0.2.100"}, "198.51.100.1", "anonymous"),
        ({"VIA": "1.1 squid"}, "198.51.100.1", "anonymous"),
        ({"Proxy-Connection": "keep-alive"}, "198.51.100.1", "anonymous"),
        ({"Host": "192.0.2.10:8080", "User-Agent": "x"}, "198.51.100.1", "elite"),
    ],
)
def test_anonymity_grades(headers, remote, expected):
    """The checker's own addresses (192.0.2.10, 2001:db8::7) in any header or as the exit
    address make a member transparent; proxy headers alone, anonymous; neither, elite."""
    own = {ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("2001:db8::7")}
    body = {"nonce": "n", "remote_addr": remote, "headers": headers, "method": "GET"}
    assert grade(body, own)[0] == expected


def test_proxy_headers_the_judge_always_sees_do_not_count():
    """A reverse proxy in front of the judge adds its own Via: the baseline (asked directly)
    is subtracted, so a member adding nothing is still elite."""
    body = {"nonce": "n", "remote_addr": "198.51.100.1", "headers": {"Via": "1.1 nginx"}}
    assert grade(body, set(), baseline={"via"})[0] == "elite"
    body["headers"]["X-Forwarded-For"] = "198.51.100.1"
    assert grade(body, set(), baseline={"via"})[0] == "anonymous"


def test_exit_country_from_the_offline_table():
    """Public exit addresses get their country (iptocc, offline); others none."""
    for remote, country in (
        ("193.0.6.139", "NL"),
        ("2001:4860:4860::8888", "US"),
        ("10.0.0.1", None),
        ("127.0.0.1", None),
        ("not an address", None),
    ):
        body = {"nonce": "n", "remote_addr": remote, "headers": {}, "method": "GET"}
        assert grade(body, set())[2] == country, remote


def test_housekeeping_removes_the_long_dead_and_old_history(pool_admin, sessions):
    """Dead past `pool_dead_remove_hours` leaves the pool; checks past `pool_check_days` go;
    an active proxy left unchecked for long loses score (freshness)."""
    now = utcnow()
    add_members(sessions)  # nothing else due
    rows = {
        "long_dead": PoolProxy(status="dead", dead_since=now - timedelta(hours=73)),
        "recently_dead": PoolProxy(status="dead", dead_since=now - timedelta(hours=71)),
        "stale": PoolProxy(
            status="active",
            score=0.9,
            uptime_pct=100.0,
            avg_latency_ms=100.0,
            last_checked_at=now - timedelta(hours=6),
        ),
    }
    with sessions() as session:
        for n, row in enumerate(rows.values()):
            row.id, row.host, row.port, row.protocol = new_uuid(), "192.0.2.1", 9000 + n, "http"
            row.next_check_at = FAR_FUTURE
            session.add(row)
        session.flush()
        for age_days in (8, 6):
            session.add(
                PoolCheck(
                    proxy_id=rows["recently_dead"].id,
                    checker_name="tcp_connect",
                    stage=1,
                    passed=False,
                    detail=f"{age_days} days old",
                    created_at=now - timedelta(days=age_days),
                )
            )
        session.commit()
    ids = {name: row.id for name, row in rows.items()}

    result = run_check_cycle(cycle_settings(pool_admin), KEY_RING)

    assert result == {"checked": 0, "active": 0, "dead": 0, "removed": 1}
    left = proxies_by_id(sessions, ids.values())
    assert ids["long_dead"] not in left and ids["recently_dead"] in left
    assert [c.detail for c in checks_of(sessions, ids["recently_dead"])] == ["6 days old"]
    assert 0 < left[ids["stale"]].score < 0.9 / 1.5


def test_the_admin_checks_due_members_on_its_own(tmp_path, farm):
    """The scheduler's tick, with the judge at the address `serve` listens on (no judge URL
    configured), grades a new member without anyone asking."""
    admin = start_admin(
        tmp_path / "admin",
        PORTCULLIS_POOL_ALLOW_PROXIES=LOOPBACK,
        PORTCULLIS_POOL_CHECK_INTERVAL_MS="200",
    )
    engine = make_engine(admin.database_url)
    try:
        sessions = make_session_factory(engine)
        (proxy_id,) = add_members(sessions, farm.http("scheduled", "anonymous", "127.0.0.12"))
        deadline = time.monotonic() + 30
        while proxies_by_id(sessions, [proxy_id])[proxy_id].status == "unchecked":
            assert time.monotonic() < deadline, admin.log_text()
            time.sleep(0.1)  # polling the store for the scheduler's verdict
        row = proxies_by_id(sessions, [proxy_id])[proxy_id]
        assert (row.status, row.anonymity, row.exit_ip) == ("active", "anonymous", "127.0.0.12")
    finally:
        engine.dispose()
        admin.stop()


def test_judge_echoes_without_a_key(pool_admin):
    """The judge answers anyone, redacts cookies, and refuses a bad nonce in seed 003's shape."""
    answer = requests.get(
        f"{pool_admin.base_url}/pool/judge?nonce=abc_123",
        headers={
            "Cookie": "session=secret",
            "Via": "1.1 somewhere",
            "X-Forwarded-For": "198.51.100.7",
            "Forwarded": "for=198.51.100.7",
        },
        timeout=10,
    )
    assert answer.status_code == 200
    body = answer.json()
    # Forwarded headers reach the judge as sent, and the admin does not trust them.
    assert (body["nonce"], body["remote_addr"], body["method"]) == ("abc_123", "127.0.0.1", "GET")
    assert body["headers"]["Via"] == "1.1 somewhere"
    assert body["headers"]["X-Forwarded-For"] == "198.51.100.7"
    assert body["headers"]["Forwarded"] == "for=198.51.100.7"
    assert body["headers"]["Cookie"] == "[redacted]"
    assert answer.headers["Cache-Control"] == "no-store"
    for bad in ("", "a b", "x" * 129):
        refused = requests.get(f"{pool_admin.base_url}/pool/judge", params={"nonce": bad})
        assert refused.status_code == 422
        assert refused.json()["error"]["details"]["field"] == "nonce"
