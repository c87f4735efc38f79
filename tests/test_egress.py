"""Targets' egress in the data plane: a real admin, a real mitmdump, real proxies, a real upstream.

The upstream listens on 127.0.0.2 and tells each request's peer address; every proxy
(tests/pool_proxies.py) binds its outgoing connections to its own address on 127.0.1.0/24,
so the upstream sees which proxy carried a request. The gateway may reach only 127.0.0.2
and 127.0.1.0/24: 127.0.0.1 (and so `localhost`) is a refused address, for targets and for
proxies alike. One admin (a store of its own: async jobs are dispatched by every gateway on a
store) and one gateway for the module.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models.pool import PoolProxy
from tests.async_support import finished, schedule, submit, wait_for_job
from tests.egress_support import (
    WhoUpstream,
    asking_proxies,
    poll,
    pool_members,
)
from tests.pool_proxies import ProxyFarm, dead_port, tls_files
from tests.proxy_support import CALLER_KEY, TARGET_TOKEN, Setup, call, logged, start_proxy
from tests.support import AdminServer, Api, create_user, start_admin
from tests.web_support import sign_in

AUTH = {"X-API-Key": CALLER_KEY}
UPSTREAM_ADDRESS = "127.0.0.2"
PROXY_NET = "127.0.1.0/24"
USER, PASSWORD = "egress-user", "Egress-Pass-9Zq"


@dataclass
class Stack:
    admin: AdminServer
    gateway: object
    api: Api


@pytest.fixture(scope="module")
def farm():
    with ProxyFarm() as proxies:
        yield proxies


@pytest.fixture(scope="module")
def who():
    with WhoUpstream(UPSTREAM_ADDRESS) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """(ca, cert, key) for an HTTPS upstream on the upstream's address; the gateway trusts it."""
    return tls_files(tmp_path_factory.mktemp("egress-tls"), UPSTREAM_ADDRESS)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tls):
    admin = start_admin(
        tmp_path_factory.mktemp("egress-admin"),
        PORTCULLIS_POOL_JUDGE_URL="http://127.0.0.1:9/no-judge",
    )
    gateway = start_proxy(
        admin,
        tmp_path_factory.mktemp("egress-proxy"),
        "--set",
        f"portcullis_allow_targets={UPSTREAM_ADDRESS}/32,{PROXY_NET}",
        "--set",
        f"ssl_verify_upstream_trusted_ca={tls[0]}",
        *schedule(),
        allow_loopback=False,
    )
    api = Api(admin.base_url, create_user(admin, "egress@example.test").token)
    yield Stack(admin, gateway, api)
    gateway.stop()
    admin.stop()


def set_egress(stack: Stack, made: Setup, egress: dict | None) -> None:
    path = f"{made.base}/targets/{made.target['sKey']}"
    response = stack.api.put(path, json={"targetEgress": egress})
    assert response.status_code == 200, response.text


def through(stack, who, made: Setup, peers: set[str], method: str = "GET", **kwargs):
    """The first answer once the gateway serves `made` with the upstream seeing one of `peers`
    (a configuration change reaches the gateway within moments)."""

    def attempt():
        before = len(who.seen)
        response = call(stack.gateway, method, f"/api/{made.id}/v1/x", headers=AUTH, **kwargs)
        seen = who.seen[before:]
        return (response, seen[-1]) if seen and seen[-1].peer in peers else None

    return poll(attempt, what=f"a request through {peers}")


def answer_when(stack, made: Setup, wanted, what: str):
    """The first answer to a GET through `made` that is `wanted` (a setting coming into force)."""

    def attempt():
        response = call(stack.gateway, "GET", f"/api/{made.id}/v1/x", headers=AUTH)
        return response if wanted(response) else None

    return poll(attempt, what=what)


def counted_egress(stack: Stack, made: Setup) -> dict[str, int]:
    """The proxy's target-leg requests by egress, as the Core API's telemetry answers them."""
    path = f"{made.base}/proxies/{made.id}/telemetry"
    response = stack.api.get(path, params={"interval": "minute"})
    assert response.status_code == 200, response.text
    counted: dict[str, int] = {}
    for record in response.json()["telemetry"]:
        for member, count in record["egressCountMap"].items():
            counted[member] = counted.get(member, 0) + count
    return counted


def test_fixed_http_and_socks5_proxies_carry_requests_with_the_target_credential(
    stack, who, farm, page: Page
):
    http_proxy = farm.http("http", "elite", "127.0.1.1", credentials=(USER, PASSWORD))
    socks_proxy = farm.socks("socks", "127.0.1.2", credentials=(USER, PASSWORD))
    made = Setup(stack.api, who)
    for proxy in (http_proxy, socks_proxy):
        url = f"{proxy.protocol}://{USER}:{PASSWORD}@{proxy.host}:{proxy.port}"
        set_egress(stack, made, {"mode": "proxy", "url": url})
        response, seen = through(stack, who, made, {proxy.host})
        assert response.status_code == 200, response.text
        # The caller's answer is the target's, unchanged: body and headers.
        assert response.content == seen.answered
        assert response.headers["X-Upstream"] == "echo"
        assert seen.headers["Authorization"] == f"Bearer {TARGET_TOKEN}"
        assert CALLER_KEY not in json.dumps(seen.headers)
        entry = logged(stack.api, made, response.headers["portcullis-request-id"])
        assert entry["targetData"]["egress"] == {
            "kind": "proxy",
            "proxyId": None,
            "address": f"{proxy.host}:{proxy.port}",
            "protocol": proxy.protocol,
        }
        assert PASSWORD not in json.dumps(entry) and USER not in json.dumps(entry)
        if proxy is http_proxy:  # the web admin's request page names the proxy, not its login
            sign_in(page, stack.admin.base_url, stack.api.token)
            request_id = response.headers["portcullis-request-id"]
            page.goto(
                f"{stack.admin.base_url}/ui/c/{made.client_id}/proxies/{made.id}"
                f"/requests/{request_id}"
            )
            expect(page.get_by_text("through the fixed http proxy")).to_contain_text(
                f"{proxy.host}:{proxy.port}"
            )
            assert PASSWORD not in page.content() and USER not in page.content()
        # Wrong credentials: a 502 of the gateway's own, naming neither them nor the proxy.
        wrong = f"{proxy.protocol}://{USER}:Wrong-{PASSWORD}@{proxy.host}:{proxy.port}"
        set_egress(stack, made, {"mode": "proxy", "url": wrong})
        refused = answer_when(
            stack, made, lambda r: r.status_code == 502, "the wrong credentials in force"
        )
        assert refused.json()["error"]["code"] == "EGRESS_PROXY_FAILED"
        assert refused.headers["requestrocket-proxy-code"] == "gateway-error"
        for secret in (PASSWORD, USER, f"{proxy.port}", proxy.host):
            assert secret not in refused.text and secret not in str(refused.headers)
        failed_entry = logged(stack.api, made, refused.headers["portcullis-request-id"])
        assert PASSWORD not in json.dumps(failed_entry)
        if proxy is socks_proxy:  # a streamed body (over 1 MB) goes through the tunnel whole
            big = b"x" * (3 * 1024 * 1024)
            set_egress(stack, made, {"mode": "proxy", "url": url})
            through(stack, who, made, {proxy.host})
            streamed = call(stack.gateway, "POST", f"/api/{made.id}/v1/big", headers=AUTH, data=big)
            assert streamed.status_code == 200, streamed.text
            assert (who.seen[-1].peer, who.seen[-1].body_bytes) == (proxy.host, len(big))
    socks4 = farm.socks("socks4", "127.0.1.3", protocol="socks4")
    set_egress(stack, made, {"mode": "proxy", "url": f"socks4://{socks4.host}:{socks4.port}"})
    response, seen = through(stack, who, made, {socks4.host})
    assert response.status_code == 200 and response.content == seen.answered
    assert PASSWORD not in stack.gateway.log_text()
    # Telemetry counts the target leg under `proxy` (a fixed proxy), off the loop in batches.
    poll(lambda: counted_egress(stack, made).get("proxy", 0) >= 2, what="telemetry")


def test_https_targets_through_a_connect_tunnel_and_socks5_verify_the_target(
    stack, farm, tls, tmp_path
):
    http_proxy = farm.http("tls-http", "elite", "127.0.1.51", credentials=(USER, PASSWORD))
    socks_proxy = farm.socks("tls-socks", "127.0.1.52")
    with WhoUpstream(UPSTREAM_ADDRESS, tls=(tls[1], tls[2])) as secure:
        made = Setup(stack.api, secure)
        for proxy in (http_proxy, socks_proxy):
            userinfo = f"{USER}:{PASSWORD}@" if proxy is http_proxy else ""
            url = f"{proxy.protocol}://{userinfo}{proxy.host}:{proxy.port}"
            set_egress(stack, made, {"mode": "proxy", "url": url})
            response, seen = through(stack, secure, made, {proxy.host})
            assert response.status_code == 200, response.text
            assert response.content == seen.answered
            assert seen.headers["Authorization"] == f"Bearer {TARGET_TOKEN}"
    # A certificate the gateway does not trust: refused through the tunnel as when direct,
    # and it is the target's failure, not the proxy's.
    untrusted = tls_files(tmp_path, UPSTREAM_ADDRESS)
    with WhoUpstream(UPSTREAM_ADDRESS, tls=(untrusted[1], untrusted[2])) as impostor:
        made = Setup(stack.api, impostor)
        for proxy in (http_proxy, socks_proxy):
            userinfo = f"{USER}:{PASSWORD}@" if proxy is http_proxy else ""
            url = f"{proxy.protocol}://{userinfo}{proxy.host}:{proxy.port}"
            set_egress(stack, made, {"mode": "proxy", "url": url})
            refused = answer_when(
                stack,
                made,
                lambda r, at=f"{proxy.host}:{proxy.port}": (
                    r.status_code == 502 and _egress_url(stack, made).endswith(at)
                ),
                f"the untrusted target through {url}",
            )
            assert refused.json()["error"]["code"] == "TARGET_UNREACHABLE", refused.text
            assert TARGET_TOKEN not in impostor_text(impostor)


def _egress_url(stack, made: Setup) -> str:
    path = f"{made.base}/targets/{made.target['sKey']}"
    return stack.api.get(path).json()["targets"][0]["targetEgress"]["url"]


def impostor_text(upstream: WhoUpstream) -> str:
    return json.dumps([seen.headers for seen in upstream.seen])


def test_pool_rotation_per_request_then_sticky_and_a_dead_member_is_skipped(stack, who, farm):
    proxies = [
        farm.http("p1", "elite", "127.0.1.11"),
        farm.http("p2", "elite", "127.0.1.12"),
        farm.socks("p3", "127.0.1.13"),
        farm.socks("p4", "127.0.1.14"),
    ]
    rows = pool_members(stack.admin.database_url, proxies, "AQ")
    ids = {row["host"]: row["id"] for row in rows}
    made = Setup(stack.api, who)
    set_egress(stack, made, {"mode": "pool", "country": "AQ", "rotation": "per_request"})
    addresses = set(ids)
    through(stack, who, made, addresses)  # in force
    before = len(who.seen)
    for _ in range(20):
        assert call(stack.gateway, "GET", f"/api/{made.id}/v1/x", headers=AUTH).status_code == 200
    spread = Counter(seen.peer for seen in who.seen[before:])
    assert spread == dict.fromkeys(addresses, 5), spread  # round robin over all four
    response = call(stack.gateway, "GET", f"/api/{made.id}/v1/x", headers=AUTH)
    entry = logged(stack.api, made, response.headers["portcullis-request-id"])
    egress = entry["targetData"]["egress"]
    assert egress["kind"] == "pool" and egress["proxyId"] in ids.values()
    assert egress["address"].split(":")[0] == next(
        h for h, i in ids.items() if i == egress["proxyId"]
    )

    set_egress(
        stack, made, {"mode": "pool", "country": "AQ", "rotation": "sticky", "stickySeconds": 600}
    )
    poll(
        lambda: (
            stack.api.get(f"{made.base}/targets/{made.target['sKey']}").json()["targets"][0][
                "targetEgress"
            ]["rotation"]
            == "sticky"
        ),
        what="the sticky setting stored",
    )
    # The gateway picks the new setting up within moments; from then on, one member only.
    poll(lambda: len(_last_peers(stack, who, made, 4)) == 1, what="sticky rotation in force")
    held = _last_peers(stack, who, made, 10)
    assert len(held) == 1, held
    [kept] = held

    # The held member dies: the next request, a POST, goes through another member (nothing
    # reached the target), and the dead one is marked dead in the store. (Without a body:
    # the test's HTTP proxies do not relay bodies of plain-http requests.)
    _kill(farm, proxies, kept)
    response = call(stack.gateway, "POST", f"/api/{made.id}/v1/x", headers=AUTH)
    assert response.status_code == 200, response.text
    assert who.seen[-1].peer != kept and who.seen[-1].method == "POST"
    assert len(_last_peers(stack, who, made, 5)) == 1  # sticky again, on the new member
    dead_id = ids[kept]

    def marked_dead():
        with Session(stack.admin.engine) as session:
            row = session.scalar(select(PoolProxy).where(PoolProxy.id == dead_id))
            session.expunge_all()
            return row if row.status == "dead" else None

    row = poll(marked_dead, what="the dead member marked in the store")
    assert row.dead_since is not None
    # Once `stickySeconds` is over, the next member takes over (1 s here).
    set_egress(
        stack, made, {"mode": "pool", "country": "AQ", "rotation": "sticky", "stickySeconds": 1}
    )
    now_held = who.seen[-1].peer

    def another() -> str | None:
        peer = _last_peers(stack, who, made, 1).pop()
        return peer if peer != now_held else None

    moved = poll(another, what="the sticky member replaced after stickySeconds")
    assert moved in addresses - {kept}
    # Telemetry counts the pool members by id on the target leg.
    poll(lambda: set(counted_egress(stack, made)) >= set(ids.values()), what="telemetry")


def _last_peers(stack, who, made: Setup, count: int) -> set[str]:
    before = len(who.seen)
    for _ in range(count):
        assert call(stack.gateway, "GET", f"/api/{made.id}/v1/x", headers=AUTH).status_code == 200
    return {seen.peer for seen in who.seen[before:]}


def _kill(farm: ProxyFarm, proxies, address: str) -> None:
    """Stop the proxy on `address` listening (its connections end with each request)."""
    port = next(p.port for p in proxies if p.host == address)
    server = next(s for s in farm.servers if s.sockets and s.sockets[0].getsockname()[1] == port)

    async def close() -> None:
        server.close()

    asyncio.run_coroutine_threadsafe(close(), farm.loop).result(10)


def test_no_free_pool_member_is_a_502_and_nothing_leaves(stack, who, farm):
    leased = farm.http("leased", "elite", "127.0.1.21")
    [row] = pool_members(stack.admin.database_url, [leased], "BV")
    with Session(stack.admin.engine) as session:  # leased to someone: not the gateway's
        session.execute(
            text("UPDATE pool_proxies SET leased_until = :t, lease_id = 'l1' WHERE id = :i"),
            {"t": 4102444800.0, "i": row["id"]},
        )
        session.commit()
    made = Setup(stack.api, who)
    set_egress(stack, made, {"mode": "pool", "country": "BV"})
    before = len(who.seen)
    response = answer_when(stack, made, lambda r: r.status_code == 502, "the pool egress in force")
    body = response.json()
    assert body["error"]["code"] == "NO_EGRESS_PROXY", body
    assert response.headers["requestrocket-proxy-code"] == "gateway-error"
    assert len(who.seen) == before
    entry = logged(stack.api, made, response.headers["portcullis-request-id"])
    assert entry["validationData"]["requestSent"] is False and entry["targetData"] is None


def test_the_ssrf_guard_holds_through_a_proxy_for_targets_and_proxies(stack, who, farm):
    http_proxy = farm.http("ssrf-http", "elite", "127.0.1.31")
    socks_proxy = farm.socks("ssrf-socks", "127.0.1.32")
    with WhoUpstream("127.0.0.1") as inside:  # what must never be reached
        for base in (f"http://localhost:{inside.port}", f"http://127.0.0.1:{inside.port}"):
            made = Setup(stack.api, who)
            response = stack.api.put(
                f"{made.base}/targets/{made.target['sKey']}", json={"targetBaseURL": base}
            )
            assert response.status_code == 200, response.text
            for proxy in (http_proxy, socks_proxy):
                url = f"{proxy.protocol}://{proxy.host}:{proxy.port}"
                set_egress(stack, made, {"mode": "proxy", "url": url})
                refused = answer_when(
                    stack, made, lambda r: r.status_code == 403, f"{base} through {url} refused"
                )
                assert refused.json()["error"]["code"] == "TARGET_ADDRESS_NOT_ALLOWED"
        # A proxy on a refused address is refused as well (the tenant's "proxy" would
        # otherwise be a way in): by name and by literal address.
        made = Setup(stack.api, who)
        for host in ("localhost", "127.0.0.1"):
            set_egress(stack, made, {"mode": "proxy", "url": f"http://{host}:{inside.port}"})
            refused = answer_when(
                stack, made, lambda r: r.status_code == 502, f"the proxy {host} refused"
            )
            assert refused.json()["error"]["code"] == "EGRESS_PROXY_FAILED"
        assert inside.seen == []
    # A fixed proxy nobody listens on: the proxy's failure, not the target's.
    nobody = f"socks5://127.0.1.33:{dead_port('127.0.1.33')}"
    set_egress(stack, made, {"mode": "proxy", "url": nobody})
    failed = answer_when(
        stack,
        made,
        lambda r: "could not connect to the egress proxy" in r.text,
        "the dead proxy in force",
    )
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "EGRESS_PROXY_FAILED"


def test_async_jobs_are_delivered_through_the_egress(stack, who, farm):
    proxy = farm.socks("async", "127.0.1.41", credentials=(USER, PASSWORD))
    made = Setup(stack.api, who)
    url = f"socks5://{USER}:{PASSWORD}@{proxy.host}:{proxy.port}"
    set_egress(stack, made, {"mode": "proxy", "url": url})
    through(stack, who, made, {proxy.host})  # in force
    accepted = submit(stack.gateway, made, "/v1/jobs", json={"n": 1})
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["requestId"]
    job = wait_for_job(stack.api, made, request_id, finished)
    assert job["status"] == "succeeded", job
    delivered = [s for s in who.seen if s.path.endswith("/v1/jobs")]
    assert [s.peer for s in delivered] == [proxy.host]
    assert delivered[0].headers["Authorization"] == f"Bearer {TARGET_TOKEN}"


def test_a_proxy_is_asked_for_the_checked_address_never_the_name(api, gateway, upstream, farm):
    """Through a proxy, a target's name is resolved and checked by the gateway, and the proxy
    is asked for that address: it cannot resolve the name to somewhere else (the session's
    gateway may reach 127.0.0.1, which `localhost` resolves to)."""
    http_proxy, socks_proxy, asked = asking_proxies(farm, "127.0.0.1")
    made = Setup(api, upstream)
    port = upstream.port
    path = f"{made.base}/targets/{made.target['sKey']}"
    assert api.put(path, json={"targetBaseURL": f"http://localhost:{port}/base"}).ok
    expected = {
        "GET": f"GET http://127.0.0.1:{port}/base/v1/pinned",
        "socks5": f"socks5 ip 127.0.0.1:{port}",
    }
    for proxy, kind in ((http_proxy, "GET"), (socks_proxy, "socks5")):
        url = f"{proxy.protocol}://{proxy.host}:{proxy.port}"
        assert api.put(path, json={"targetEgress": {"mode": "proxy", "url": url}}).ok

        def in_use(kind=kind):
            response = call(gateway, "GET", f"/api/{made.id}/v1/pinned", headers=AUTH)
            return response if asked and asked[-1].split()[0] == kind else None

        response = poll(in_use, what=f"the {kind} proxy in use")
        assert response.status_code == 200, response.text
        assert asked[-1] == expected[kind]
        assert ("Host", f"localhost:{port}") in upstream.received[-1].headers
    assert not any("localhost" in line for line in asked), asked
