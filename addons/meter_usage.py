"""Meter usage rows for the Core API's read-out, written in batches off the event loop.

Each row is one meter's count in one window as the counters last reported it.
A row only ever grows within its window (the larger of the stored and the new
count is kept), so batches from several processes sharing Redis, arriving in
any order, never set a count back. Without Redis each process has its own
counts, and the read-out shows whichever process wrote last.

Counting a request only notes its windows' counts in memory (`UsageNotes`); once
per interval the latest count of each meter window goes to the writer thread,
so a busy meter costs the event loop a few dict writes per request and the
store one row per window per interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from addons.batch_writer import BatchWriter
from addons.counters import Outcome, WindowCount
from models import Meter, MeterUsage
from models.upsert import INSERTS

METER_KEY_PREFIX = "meter:"


def meter_key(meter_id: str) -> str:
    return f"{METER_KEY_PREFIX}{meter_id}"


class UsageNotes:
    """The latest count of each meter window, handed to `writer` every `interval` seconds."""

    def __init__(self, writer: BatchWriter, interval: float):
        self.writer = writer
        self.interval = interval
        self._latest: dict[tuple, WindowCount] = {}
        self._task: asyncio.Task | None = None

    def note(self, outcome: Outcome) -> None:
        """Keep the counts of an allowed `consume` outcome: the largest of each window (with
        Redis, concurrent requests' outcomes can arrive in any order)."""
        latest = self._latest
        for count in outcome.windows:
            key = (count.limit.key, count.limit.window, count.resets_at)
            kept = latest.get(key)
            if kept is None or count.used > kept.used:
                latest[key] = count

    def start(self) -> None:
        """Begin handing counts over; call on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._hand_over_every_interval())

    def stop(self) -> None:
        """Hand over what is noted (the writer writes it when it stops)."""
        if self._task is not None:
            self._task.cancel()
        self.hand_over()

    def hand_over(self) -> None:
        if self._latest:
            counts, self._latest = list(self._latest.values()), {}
            self.writer.submit(counts)

    async def _hand_over_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.hand_over()


def usage_rows(counts: Iterable[WindowCount]) -> list[dict]:
    """One row per meter window among `counts` (of allowed `consume` outcomes)."""
    now = datetime.now(UTC)
    rows = []
    for count in counts:
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


def write_usage(session: Session, batches: list[list[WindowCount]]) -> None:
    """Upsert the counts of `batches`, keeping the largest count per meter window."""
    latest: dict[tuple, dict] = {}
    for counts in batches:
        for row in usage_rows(counts):
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
