"""Meter usage rows for the Core API's read-out, written in batches off the event loop.

Each row is one meter's count in one window as the counters last reported it.
A row only ever grows within its window (the larger of the stored and the new
count is kept), so batches from several processes sharing Redis, arriving in
any order, never set a count back. Without Redis each process has its own
counts, and the read-out shows whichever process wrote last.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from addons.counters import Outcome
from models import Meter, MeterUsage
from models.upsert import INSERTS

METER_KEY_PREFIX = "meter:"


def meter_key(meter_id: str) -> str:
    return f"{METER_KEY_PREFIX}{meter_id}"


def usage_rows(outcome: Outcome) -> list[dict]:
    """One row per meter window of an allowed `consume` outcome."""
    now = datetime.now(UTC)
    rows = []
    for count in outcome.windows:
        if not count.limit.key.startswith(METER_KEY_PREFIX):
            continue
        start, end = count.limit.window.bounds(count.resets_at - 1)
        rows.append(
            {
                "meter_id": count.limit.key[len(METER_KEY_PREFIX) :],
                "window": count.limit.window.value,
                "window_start": start,
                "window_end": end,
                "used": count.used,
                "updated_at": now,
            }
        )
    return rows


def write_usage(session: Session, batches: list[list[dict]]) -> None:
    """Upsert the rows of `batches`, keeping the largest count per meter window."""
    latest: dict[tuple, dict] = {}
    for rows in batches:
        for row in rows:
            key = (row["meter_id"], row["window"], row["window_start"])
            if key not in latest or row["used"] >= latest[key]["used"]:
                latest[key] = row
    if not latest:
        return
    ids = {row["meter_id"] for row in latest.values()}
    known = set(session.scalars(sa.select(Meter.id).where(Meter.id.in_(ids))))
    rows = [row for row in latest.values() if row["meter_id"] in known]  # deleted meanwhile
    if not rows:
        return
    table = MeterUsage.__table__
    statement = INSERTS[session.get_bind().dialect.name](table)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["meter_id", "window", "window_start"],
        set_={
            "used": sa.case((table.c.used > excluded.used, table.c.used), else_=excluded.used),
            "updated_at": excluded.updated_at,
        },
    )
    session.execute(statement, rows)
