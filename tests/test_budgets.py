"""Budgets: a client's credit ledger, proxy prices, 402 `billing-suspended` and low-budget warnings.

Against a real admin, a real mitmdump and a real upstream, on the store under test:
- 1.00 credit at 0.25 per request: 4 x 200, then 402 `billing-suspended` with the seed's
  message, never forwarded; the low-budget warning once the balance is below the threshold;
  the ledger (one grant, four debits) sums to the balance the API reports.
- The Async API is checked at accept: 402 instead of 202, no job stored.
- Grants need the admin role (owners hold it); members read; strangers get 404.
- Entries are listed newest first, a page at a time.
- Bad input answers 400 naming the field and writes nothing.
- `run_admin.py grant-credits` grants like the API.
- A data plane stopped cleanly has written every debit, each once.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from models.credit import Price
from tests.proxy_support import CALLER_KEY, Setup, call, logged, start_proxy
from tests.support import (
    Api,
    add_member,
    answering,
    assert_error,
    assert_invalid,
    poll,
    run_admin_cli,
    run_admin_cli_in_process,
)
from tests.test_limit import received

AUTH = {"X-API-Key": CALLER_KEY}
SUSPENDED = "Payment Required - Account suspended due to insufficient budget"
LOW = "Low budget - please add a valid payment method to continue using the API"
WARNING = "requestrocket-proxy-warning"
JOBS = "asyncRequests"


@pytest.fixture(scope="module")
def refusing(admin_server, owner, upstream) -> Setup:
    """One client and proxy for the refused writes: each case checks that nothing was ever
    written on it (a case that wrote would show in its own check, and in every later one)."""
    return Setup(Api(admin_server.base_url, owner.token), upstream)


def budget(api, made: Setup) -> dict:
    response = api.get(f"{made.base}/budget")
    assert response.status_code == 200, response.text
    return response.json()["budget"][0]


def entries(api, made: Setup, **params) -> dict:
    response = api.get(f"{made.base}/budget/entries", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def grant(api, made: Setup, amount, description: str = "top-up"):
    return api.post(
        f"{made.base}/budget/grants", json={"amount": amount, "description": description}
    )


def until(gateway, path: str, status: int):
    """The first answer with `status` to `path`, polled while configuration propagates."""
    response = poll(answering(status, lambda: call(gateway, "GET", path, headers=AUTH)))
    assert response is not None, f"{path} never answered {status}"
    return response


def priced(api, upstream, gateway, per_request: str, threshold: str = "0") -> Setup:
    """A proxy at `per_request` credits, served by the gateway with no credit yet (402)."""
    made = Setup(api, upstream)
    put = api.put(f"{made.base}/proxies/{made.id}/price", json={"perRequest": per_request})
    assert put.status_code == 200, put.text
    put = api.put(f"{made.base}/budget", json={"lowBudgetThreshold": threshold})
    assert put.status_code == 200, put.text
    until(gateway, f"/api/{made.id}/probe", 402)  # served with its price: no credit yet
    return made


def funded(api, gateway, made: Setup, amount: str, path: str):
    """Grant `amount`, then the first request the new balance admits (402s take nothing)."""
    assert grant(api, made, amount).status_code == 201
    return until(gateway, path, 200)


def ledger_sum(api, made: Setup) -> Decimal:
    rows = entries(api, made, limit=1000)["entries"]
    return sum((Decimal(row["amount"]) for row in rows), Decimal(0))


def test_one_credit_at_a_quarter_admits_four_then_402_and_the_ledger_sums(api, upstream, gateway):
    made = priced(api, upstream, gateway, "0.25", threshold="0.5")
    tail = f"/api/{made.id}/paid-{uuid.uuid4().hex[:8]}"
    answers = [funded(api, gateway, made, "1.00", tail)]
    answers += [call(gateway, "GET", tail, headers=AUTH) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 402]

    refusal = answers[-1]
    body = assert_error(refusal, 402, "BILLING_SUSPENDED")
    assert body["message"] == SUSPENDED
    assert refusal.headers["requestrocket-proxy-code"] == "billing-suspended"
    assert refusal.headers["requestrocket-proxy-message"] == SUSPENDED
    assert received(upstream, tail.replace(f"/api/{made.id}", "/base")) == 4  # never forwarded
    entry = logged(api, made, refusal.headers["portcullis-request-id"])
    assert entry["proxyData"]["status"] == 402 and entry["targetData"] is None

    # Balance after each: 0.75, 0.50, 0.25, 0.00; the warning below 0.50 (and on the 402).
    warned = [r.headers.get(WARNING) for r in answers]
    assert warned == [None, None, LOW, LOW, LOW]
    for granted in answers[:4]:
        assert granted.headers["requestrocket-proxy-code"] == "proxy-access-granted"

    settled = poll(
        lambda: budget(api, made) if budget(api, made)["balance"] == "0.000000" else None
    )
    assert settled is not None, budget(api, made)
    assert settled["lowBudget"] is True and settled["lowBudgetThreshold"] == "0.500000"
    rows = entries(api, made)["entries"]
    assert [(row["kind"], row["amount"]) for row in rows] == [("debit", "-0.250000")] * 4 + [
        ("grant", "1.000000")
    ]
    assert ledger_sum(api, made) == Decimal(settled["balance"])
    requests = {row["requestId"] for row in rows[:4]}
    assert requests == {r.headers["portcullis-request-id"] for r in answers[:4]}

    # A new grant opens the way again (the data plane learns of it with the configuration).
    again = funded(api, gateway, made, "0.25", tail)
    assert again.status_code == 200
    assert_error(call(gateway, "GET", tail, headers=AUTH), 402, "BILLING_SUSPENDED")


def test_unpriced_proxies_are_not_charged(api, upstream, gateway):
    made = Setup(api, upstream)
    served = until(gateway, f"/api/{made.id}/free", 200)
    assert served.status_code == 200 and WARNING not in served.headers
    assert budget(api, made)["balance"] == "0.000000"
    assert entries(api, made)["entries"] == []


def test_async_requests_are_checked_at_accept_402_and_no_job_stored(api, upstream, gateway):
    made = priced(api, upstream, gateway, "0.40")
    path = f"/async/{made.id}/queued-{uuid.uuid4().hex[:8]}"
    first = funded(api, gateway, made, "0.50", f"/api/{made.id}/warm")  # 0.10 left
    assert first.status_code == 200
    refusal = call(gateway, "POST", path, headers=AUTH, data=b"{}")
    body = assert_error(refusal, 402, "BILLING_SUSPENDED")
    assert body["message"] == SUSPENDED
    jobs = api.get(f"{made.base}/proxies/{made.id}/async")
    assert jobs.status_code == 200, jobs.text
    assert jobs.json()[JOBS] == []  # nothing queued, nothing to deliver later

    assert grant(api, made, "1").status_code == 201
    accepted = poll(answering(202, lambda: call(gateway, "POST", path, headers=AUTH, data=b"{}")))
    assert accepted is not None
    assert len(api.get(f"{made.base}/proxies/{made.id}/async").json()[JOBS]) == 1


def test_grants_need_the_admin_role_members_read_strangers_see_nothing(
    api, upstream, make_user, admin_server
):
    from tests.support import Api

    made = Setup(api, upstream)
    member, admin, stranger = make_user(), make_user(), make_user()
    add_member(api, made.client_id, member, "user")
    add_member(api, made.client_id, admin, "admin")
    as_member = Api(admin_server.base_url, member.token)
    as_admin = Api(admin_server.base_url, admin.token)
    as_stranger = Api(admin_server.base_url, stranger.token)
    path = f"{made.base}/budget/grants"

    assert_error(as_member.post(path, json={"amount": "1"}), 403, "FORBIDDEN")
    assert_error(
        as_member.put(f"{made.base}/proxies/{made.id}/price", json={"perRequest": "0"}),
        403,
        "FORBIDDEN",
    )
    assert as_stranger.get(f"{made.base}/budget").status_code == 404
    assert as_stranger.post(path, json={"amount": "1"}).status_code == 404

    by_admin = as_admin.post(path, json={"amount": "2.5", "description": "from the admin"})
    assert by_admin.status_code == 201, by_admin.text
    entry = by_admin.json()["entries"][0]
    assert entry["kind"] == "grant" and entry["amount"] == "2.500000"
    assert entry["createdBy"] == admin.id and entry["description"] == "from the admin"
    by_owner = grant(api, made, 0.5)
    assert by_owner.status_code == 201, by_owner.text
    assert budget(as_member, made)["balance"] == "3.000000"
    listed = as_member.get(f"{made.base}/budget/entries").json()["entries"]
    assert [row["amount"] for row in listed] == ["0.500000", "2.500000"]


def test_entries_are_listed_newest_first_a_page_at_a_time(api, upstream):
    made = Setup(api, upstream)
    amounts = [f"0.{n:02d}" for n in range(1, 8)]
    for amount in amounts:
        assert grant(api, made, amount).status_code == 201
    seen, before = [], None
    while True:
        page = entries(api, made, limit=3, **({"before": before} if before else {}))
        seen += [row["amount"] for row in page["entries"]]
        before = page["nextBefore"]
        assert page["limitReached"] is (before is not None)
        if before is None:
            break
    assert seen == [f"{Decimal(a):.6f}" for a in reversed(amounts)]
    assert ledger_sum(api, made) == Decimal(budget(api, made)["balance"]) == Decimal("0.28")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "amount"),
        ({"amount": None}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"amount": -1}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"amount": "1.0000001"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "Infinity"}, "amount"),
        ({"amount": "1e30"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": [1]}, "amount"),
        ({"amount": {"v": 1}}, "amount"),
        ({"amount": "1", "description": 5}, "description"),
        ({"amount": "1", "description": "x" * 501}, "description"),
        ({"amount": "1", "kind": "debit"}, "kind"),
    ],
)
def test_bad_grants_answer_400_naming_the_field_and_write_nothing(api, refusing, body, field):
    made = refusing
    response = api.post(f"{made.base}/budget/grants", json=body)
    assert_invalid(response, field)
    assert entries(api, made)["entries"] == []
    assert budget(api, made)["balance"] == "0.000000"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "perRequest"),
        ({"perRequest": "-0.1"}, "perRequest"),
        ({"perRequest": "x"}, "perRequest"),
        ({"perRequest": "1", "perMeterUnits": "-2"}, "perMeterUnits"),
        ({"perRequest": "1", "meterUnitSize": 0}, "meterUnitSize"),
        ({"perRequest": "1", "meterUnitSize": "1000"}, "meterUnitSize"),
        ({"perRequest": "1", "meterUnitSize": 1.5}, "meterUnitSize"),
        ({"perRequest": "1", "meterUnitSize": -1000}, "meterUnitSize"),
    ],
)
def test_bad_prices_answer_400_naming_the_field_and_write_nothing(api, refusing, body, field):
    made = refusing
    path = f"{made.base}/proxies/{made.id}/price"
    assert_invalid(api.put(path, json=body), field)
    price = api.get(path).json()["prices"][0]
    assert (price["perRequest"], price["perMeterUnits"], price["meterUnitSize"]) == (
        "0.000000",
        "0.000000",
        1,
    )


def test_bad_thresholds_and_queries_answer_400_naming_the_field(api, upstream):
    made = Setup(api, upstream)
    for bad in ({}, {"lowBudgetThreshold": "-1"}, {"lowBudgetThreshold": "one"}):
        assert_invalid(api.put(f"{made.base}/budget", json=bad), "lowBudgetThreshold")
    assert budget(api, made)["lowBudgetThreshold"] == "0.000000"
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"before": -1}, "before"),
        ({"before": "z"}, "before"),
        ({"before": 10**30}, "before"),
        ({"after": 1}, "after"),
    ):
        assert_invalid(api.get(f"{made.base}/budget/entries", params=params), field)


def test_price_round_trips_and_meter_units_turn_into_exact_debits(api, upstream):
    made = Setup(api, upstream)
    path = f"{made.base}/proxies/{made.id}/price"
    body = {"perRequest": "0.01", "perMeterUnits": 0.002, "meterUnitSize": 1000}
    put = api.put(path, json=body)
    assert put.status_code == 200, put.text
    assert api.get(path).json()["prices"][0] == {
        "proxyId": made.id,
        "perRequest": "0.010000",
        "perMeterUnits": "0.002000",
        "meterUnitSize": 1000,
    }
    price = Price(per_request=10_000, per_units=2_000, unit_size=1000)  # as the snapshot holds it
    assert price.units_debit(400) == 800  # 0.0008 credits for 400 tokens
    assert price.units_debit(1) == 2 and price.units_debit(0.1) == 1  # rounded up, never down
    assert price.units_debit(0) == 0 and price.units_debit(-5) == 0


def test_cli_grant_credits(api, upstream, admin_server):
    made = Setup(api, upstream)
    result = run_admin_cli(admin_server, "grant-credits", made.client_id, "1.5")
    assert result.returncode == 0, result.stderr
    assert "balance 1.500000" in result.stdout
    row = entries(api, made)["entries"][0]
    assert (row["kind"], row["amount"], row["createdBy"]) == ("grant", "1.500000", "cli")
    # Amounts refused before the store is read: in this process, through the same `main`.
    for run, args, said in (
        (run_admin_cli_in_process, (made.client_id, "-1"), "amount"),
        (run_admin_cli_in_process, (made.client_id, "0"), "amount"),
        (run_admin_cli_in_process, (made.client_id, "lots"), "amount"),
        (run_admin_cli, ("client_nope", "1"), "no client"),
    ):
        bad = run(admin_server, "grant-credits", *args)
        assert bad.returncode != 0 and said in bad.stderr, bad.stderr
    assert budget(api, made)["balance"] == "1.500000"


def test_a_clean_shutdown_writes_every_debit_once_and_a_new_process_starts_from_it(
    api, upstream, admin_server, tmp_path
):
    gateway = start_proxy(admin_server, tmp_path / "proxy")
    try:
        made = priced(api, upstream, gateway, "0.01")
        tail = f"/api/{made.id}/many-{uuid.uuid4().hex[:8]}"
        funded(api, gateway, made, "0.2", tail)
        answers = [call(gateway, "GET", tail, headers=AUTH) for _ in range(19)]
        assert all(r.status_code == 200 for r in answers)
    finally:
        gateway.stop()
    debits = [row for row in entries(api, made)["entries"] if row["kind"] == "debit"]
    assert len(debits) == 20 and len({row["requestId"] for row in debits}) == 20
    assert budget(api, made)["balance"] == "0.000000" == f"{ledger_sum(api, made):.6f}"

    # A fresh process (spending in memory, from zero) counts the ledger's debits as spent.
    fresh = start_proxy(admin_server, tmp_path / "fresh")
    try:
        assert_error(until(fresh, tail, 402), 402, "BILLING_SUSPENDED")
    finally:
        fresh.stop()


def test_deleting_a_proxy_or_client_takes_its_price_and_ledger_along(api, upstream):
    made = Setup(api, upstream)
    price = api.put(f"{made.base}/proxies/{made.id}/price", json={"perRequest": "0.1"})
    assert price.status_code == 200, price.text
    assert grant(api, made, "1").status_code == 201
    assert api.delete(f"{made.base}/proxies/{made.id}").status_code in (200, 204)
    assert api.get(f"{made.base}/proxies/{made.id}/price").status_code == 404
    assert budget(api, made)["balance"] == "1.000000"  # the ledger is the client's
    deleted = api.delete(made.base)
    assert deleted.status_code in (200, 204), deleted.text
    assert api.get(f"{made.base}/budget").status_code == 404
