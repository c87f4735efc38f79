"""Leases are exclusive across admin processes: two admins on one store, 100 concurrent
acquires of 10 matching proxies give exactly 10 leases of 10 distinct proxies, 90 × 409 and
exactly 10 credits charged (SQLite: serialized writers; PostgreSQL: READ COMMITTED re-checks
the compare-and-set). A lease that expires frees its proxy with no sweeper.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from models.pool import PoolCreditTransaction, PoolLease
from models.store import make_session_factory
from pool.credits import add_credits
from tests.pool_support import (
    PoolApi,
    assert_pool_error,
    insert_proxies,
    proxy_row,
    stored_key_user,
)
from tests.support import AdminServer, create_user, poll, start_admin

NO_JUDGE = {"PORTCULLIS_POOL_JUDGE_URL": "http://127.0.0.1:9/no-judge"}
ACQUIRES = 100
PROXIES = 10


@pytest.fixture(scope="module")
def admins(tmp_path_factory) -> list[AdminServer]:
    """Two admin processes on one store; the second with registration switched off."""
    first = start_admin(tmp_path_factory.mktemp("leases-a"), **NO_JUDGE)
    second = start_admin(
        tmp_path_factory.mktemp("leases-b"),
        DATABASE_URL=first.database_url,
        PORTCULLIS_POOL_REGISTRATION="off",
        **NO_JUDGE,
    )
    yield [first, second]
    second.stop()
    first.stop()


def person(server: AdminServer, name: str, credits: int) -> tuple[str, str]:
    """A user with `credits` pool credits (granted in-process as the CLI grants them) and a
    `pp_` key: its id and the key."""
    user = create_user(server, f"{name}@example.test")
    key, _ = stored_key_user(server.database_url, user.email)
    with make_session_factory(server.engine)() as session:
        add_credits(session, user.id, credits, "grant", "test credits", "cli")
        session.commit()
    return user.id, key


def test_concurrent_acquires_over_two_processes_lease_each_proxy_once(admins):
    first, second = admins
    rows = insert_proxies(
        first.database_url,
        [proxy_row(status="active", country="IS", score=0.5 + n / 100) for n in range(PROXIES)],
    )
    user_id, key = person(first, "racer", ACQUIRES)
    start = threading.Barrier(ACQUIRES)

    def acquire(n: int) -> requests.Response:
        server = admins[n % 2]
        start.wait()
        return requests.post(
            f"{server.base_url}/pool/proxies/acquire",
            json={"country": "IS", "lease_duration_seconds": 3600},
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=ACQUIRES) as pool:
        answers = list(pool.map(acquire, range(ACQUIRES)))

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: PROXIES, 409: ACQUIRES - PROXIES}, [a.text for a in answers]
    won = [answer.json() for answer in answers if answer.status_code == 200]
    assert {lease["proxy"]["id"] for lease in won} == {row["id"] for row in rows}
    assert sorted(lease["credits_remaining"] for lease in won) == list(
        range(ACQUIRES - PROXIES, ACQUIRES)
    )
    for answer in answers:
        if answer.status_code == 409:
            assert_pool_error(answer, 409, "ALL_PROXIES_LEASED")

    credits = PoolApi(second.base_url, key).get("/account/credits").json()
    assert credits["balance"] == ACQUIRES - PROXIES
    with make_session_factory(first.engine)() as session:
        acquired = session.scalar(
            select(func.count(PoolCreditTransaction.id)).where(
                PoolCreditTransaction.user_id == user_id,
                PoolCreditTransaction.tx_type == "acquire",
            )
        )
        leases = session.scalar(
            select(func.count(PoolLease.id)).where(PoolLease.user_id == user_id)
        )
    assert (acquired, leases) == (PROXIES, PROXIES)
    mine = PoolApi(first.base_url, key).get("/account/leases").json()["items"]
    assert {lease["lease_id"] for lease in mine} == {lease["lease_id"] for lease in won}


def test_concurrent_acquires_never_overdraw(admins):
    """Fewer credits than free proxies: the charge's compare-and-set refuses the rest (402)
    and rolls their claims back, so the proxies they had claimed stay free."""
    first, second = admins
    rows = insert_proxies(
        first.database_url, [proxy_row(status="active", country="MU") for _ in range(PROXIES)]
    )
    _, key = person(first, "short-of-credits", 3)
    tries = 30
    start = threading.Barrier(tries)

    def acquire(n: int) -> requests.Response:
        start.wait()
        return PoolApi(admins[n % 2].base_url, key).request(
            "POST", "/proxies/acquire", json={"country": "MU"}
        )

    with ThreadPoolExecutor(max_workers=tries) as pool:
        answers = list(pool.map(acquire, range(tries)))
    assert Counter(a.status_code for a in answers) == {200: 3, 402: tries - 3}
    for answer in answers:
        if answer.status_code == 402:
            assert_pool_error(answer, 402, "INSUFFICIENT_CREDITS")
    assert PoolApi(second.base_url, key).get("/account").json()["balance"] == 0
    # The seven proxies nobody paid for are free: someone with credits gets each of them.
    _, rich = person(second, "rich", 10)
    taken = {
        PoolApi(second.base_url, rich)
        .request("POST", "/proxies/acquire", json={"country": "MU"})
        .json()["proxy"]["id"]
        for _ in range(PROXIES - 3)
    }
    won = {a.json()["proxy"]["id"] for a in answers if a.status_code == 200}
    assert taken | won == {row["id"] for row in rows} and not taken & won


def test_an_expired_lease_frees_its_proxy(admins):
    first, second = admins
    (only,) = insert_proxies(first.database_url, [proxy_row(status="active", country="FJ")])
    _, key = person(first, "brief", 5)
    holder = PoolApi(first.base_url, key)
    short = holder.request(
        "POST", "/proxies/acquire", json={"country": "FJ", "lease_duration_seconds": 1}
    )
    assert short.status_code == 200, short.text
    assert short.json()["proxy"]["id"] == only["id"]

    # Until it expires the proxy is leased; then the other process hands it out again.
    other = PoolApi(second.base_url, key)

    def acquired_again():
        answer = other.request("POST", "/proxies/acquire", json={"country": "FJ"})
        if answer.status_code == 409:
            return None
        return answer

    again = poll(acquired_again, timeout=30)
    assert again is not None and again.status_code == 200, again and again.text
    assert again.json()["proxy"]["id"] == only["id"]
    assert again.json()["credits_remaining"] == 3  # a refused acquire charged nothing
    # The expired lease is no longer listed; releasing it now changes nothing.
    listed = holder.get("/account/leases").json()["items"]
    assert [lease["lease_id"] for lease in listed] == [again.json()["lease_id"]]
    late = holder.request("POST", f"/proxies/acquire/{short.json()['lease_id']}/release")
    assert late.status_code == 200 and late.json()["status"] == "expired"
    assert_pool_error(
        holder.request("POST", "/proxies/acquire", json={"country": "FJ"}),
        409,
        "ALL_PROXIES_LEASED",
    )


def test_registration_switched_off(admins):
    _, closed = admins
    answer = PoolApi(closed.base_url, None).request(
        "POST", "/auth/register", json={"email": "late@example.test"}
    )
    assert_pool_error(answer, 403, "REGISTRATION_CLOSED")
