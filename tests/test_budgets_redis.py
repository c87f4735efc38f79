"""Budgets across processes: two mitmdump processes sharing one Redis never overdraw a client.

1.00 credit at 0.05 per request, 50 concurrent requests spread over both processes:
exactly 20 answer 200 and reach the upstream, 30 answer 402 `billing-suspended`; once
both processes stop cleanly the ledger holds exactly 20 debits, each request once, and
sums to a zero balance. A process started afterwards (on the same Redis) refuses too.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.proxy_support import CALLER_KEY, Setup, call, start_proxies, start_proxy
from tests.support import assert_error
from tests.test_budgets import budget, entries, grant, ledger_sum, until
from tests.test_limit import received
from tests.test_redis_limits import redis_server, shared  # noqa: F401 (fixtures)

AUTH = {"X-API-Key": CALLER_KEY}
# Patient with Redis on a loaded test machine: a timeout would answer 503 (fail closed).
PATIENT = ("--set", "portcullis_redis_timeout_ms=3000")


def test_two_processes_share_one_balance_exactly(shared, upstream, tmp_path):  # noqa: F811
    server, api = shared
    gateways = start_proxies(server, [tmp_path / f"proxy{n}" for n in (1, 2)], *PATIENT)
    try:
        made = Setup(api, upstream)
        price = api.put(f"{made.base}/proxies/{made.id}/price", json={"perRequest": "0.05"})
        assert price.status_code == 200, price.text
        for gateway in gateways:  # both serve the price: no credit yet, nothing taken
            until(gateway, f"/api/{made.id}/probe", 402)
        assert grant(api, made, "1.00").status_code == 201
        for gateway in gateways:  # both know of the grant (each answer here costs 0.05)
            until(gateway, f"/api/{made.id}/probe", 200)
        tail = f"spread-{uuid.uuid4().hex[:8]}"

        def send(number: int):
            return call(gateways[number % 2], "GET", f"/api/{made.id}/{tail}", headers=AUTH)

        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(send, range(50)))
        statuses = [r.status_code for r in answers]
        assert statuses.count(200) == 18 and statuses.count(402) == 32, statuses
        assert received(upstream, f"/base/{tail}") == 18
        for refusal in (r for r in answers if r.status_code == 402):
            assert_error(refusal, 402, "BILLING_SUSPENDED")
            assert refusal.headers["requestrocket-proxy-code"] == "billing-suspended"
    finally:
        for gateway in gateways:
            gateway.stop()

    debits = [row for row in entries(api, made, limit=1000)["entries"] if row["kind"] == "debit"]
    assert len(debits) == 20 and len({row["requestId"] for row in debits}) == 20
    assert budget(api, made)["balance"] == "0.000000" == f"{ledger_sum(api, made):.6f}"

    later = start_proxy(server, tmp_path / "proxy3", *PATIENT)
    try:
        assert_error(until(later, f"/api/{made.id}/after", 402), 402, "BILLING_SUSPENDED")
    finally:
        later.stop()
