"""Meter units turned into debits (`Budget.charge_units`, the entry point for meters).

Against a real store (SQLite or PostgreSQL) and the in-memory spending counters: units are
charged at the proxy's unit price, rounded up to the micro-credit, one ledger entry per
request and meter; a unit charge may
take the balance below zero, after which a request is refused; the snapshot built afterwards
counts the written debits.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from addons.batch_writer import BatchWriter
from addons.budget import Budget
from addons.counters import SharedCounters
from addons.snapshot import Snapshot
from models import Client, CreditEntry
from models.credit import BudgetView, Price, balance_micro, budget_views, grant, write_debits
from models.store import make_engine


def test_units_are_charged_exactly_once_per_request_and_meter(settings, sessions):
    with sessions() as session:
        client = Client(name="Units")
        session.add(client)
        session.flush()
        grant(session, client.id, 1_000, "a little", "test")  # 0.001 credits
        session.commit()
        client_id = client.id
    budget = Budget(SharedCounters())
    budget.writer = BatchWriter(make_engine(settings.database_url), write_debits, "ledger-test")
    budget.writer.start()
    price = Price(per_request=0, per_units=2_000, unit_size=1_000)  # 0.002 per 1000 units
    snapshot = Snapshot(
        1, {}, {}, budgets={client_id: BudgetView(1_000, 0, 0)}, prices={"proxy_x": price}
    )

    async def charge(request_id: str, meter_id: str, units: float) -> int:
        return await budget.charge_units(
            snapshot, client_id, "proxy_x", request_id, meter_id, units
        )

    async def scenario() -> list:
        return [
            await charge("r1", "m1", 400),  # 800 micro-credits
            await charge("r1", "m2", 1),  # 2: another meter of the same request
            await charge("r2", "m1", 0.1),  # 1: rounded up, never down
            await charge("r3", "m1", 0),  # nothing
            await charge("r4", "m1", 500),  # 1000: overdraws (the answer was already sent)
            await (budget.spending.for_counters(budget.shared.counters)).spend(
                client_id, 0, 1_000, 0, 1
            ),
        ]

    *taken, after = asyncio.run(scenario())
    budget.done()  # writes what is queued
    assert taken == [800, 2, 1, 0, 1_000]
    assert after.allowed is False and after.spent == 1_803  # the next request: refused
    with sessions() as session:
        rows = session.scalars(select(CreditEntry).order_by(CreditEntry.id)).all()
        debits = [(r.request_id, r.amount_micro) for r in rows if r.kind == "debit"]
        assert debits == [("r1:m1", -800), ("r1:m2", -2), ("r2:m1", -1), ("r4:m1", -1_000)]
        assert balance_micro(session, client_id) == 1_000 - 1_803
        assert budget_views(session)[client_id] == BudgetView(1_000, 1_803, 0)
        write_debits(session, [])  # nothing to write is fine
        session.commit()
