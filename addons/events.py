"""The data plane's events (credits low/exhausted, rate or meter limit reached), to the store.

Hooks call `Events.emit(event)` on mitmproxy's event loop: it only checks an
in-memory set of dedup keys already sent (so a flood of 429s queues one event per
key) and hands the event to a batch writer, whose thread calls
`models.events.record_event`. The store's unique dedup key settles races between
processes: the same condition reported by several workers is stored once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from addons.batch_writer import BatchWriter
from models.events import Event, record_event
from models.settings import Settings
from models.store import make_engine

log = logging.getLogger("portcullis.events")
REMEMBERED_KEYS = 10_000  # the oldest are forgotten first: at worst, a key is sent again


def write_events(session: Session, events: list[Event]) -> None:
    """Record a batch of events (the writer thread); duplicates are skipped by the store."""
    for event in events:
        record_event(session, event)


def utc_date(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).date().isoformat()


def utc_minute(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M")


class Events:
    """The one writer of data-plane events (registered in addons/gateway.py)."""

    def __init__(self):
        self.writer: BatchWriter | None = None
        self._sent: OrderedDict[str, None] = OrderedDict()

    def running(self) -> None:
        engine = make_engine(Settings.from_env().database_url)
        self.writer = BatchWriter(engine, write_events, "portcullis-events")
        self.writer.start()

    def done(self) -> None:
        if self.writer is not None:
            self.writer.stop()

    def emit(self, event: Event) -> None:
        """Queue `event` unless its dedup key was queued already by this process."""
        key = event.dedup_key
        if key is not None:
            if key in self._sent:
                return
            self._sent[key] = None
            if len(self._sent) > REMEMBERED_KEYS:
                self._sent.popitem(last=False)
        if self.writer is None:  # not running (never in a started data plane)
            log.error("event writer not started: %s lost", event.name)
            return
        self.writer.submit(event)


def ratelimit_event(
    client_id: str, proxy_id: str, window: str, window_start: float, meter_id: str | None = None
) -> Event:
    """`ratelimit.reached`: once per proxy (and meter), window and window start."""
    start = utc_minute(window_start)
    what = f"meter {meter_id}'s limit" if meter_id else "rate limit"
    scope = f"{meter_id}/{window}" if meter_id else window
    details = {"proxyId": proxy_id, "window": window, "windowStart": start}
    if meter_id:
        details["meterId"] = meter_id
    return Event(
        name="ratelimit.reached",
        title=f"Proxy {proxy_id} reached its {what}",
        message=f"Requests to proxy {proxy_id} are refused (429) until this {window} ends.",
        details=details,
        client_id=client_id,
        dedup_key=f"ratelimit.reached:{proxy_id}:{scope}:{start}",
    )


def credits_event(client_id: str, left: str, threshold: str, exhausted: bool, now: float) -> Event:
    """`credits.low` or `credits.exhausted`: once per client and UTC day."""
    name = "credits.exhausted" if exhausted else "credits.low"
    if exhausted:
        title = "Credits used up: priced requests are refused"
        message = f"The client's balance ({left}) cannot pay for requests; they are answered 402."
    else:
        title = "Credit balance is low"
        message = f"The client's balance is {left}, below its low-budget threshold of {threshold}."
    return Event(
        name=name,
        title=title,
        message=message,
        details={"balance": left, "lowBudgetThreshold": threshold},
        client_id=client_id,
        dedup_key=f"{name}:{client_id}:{utc_date(now)}",
    )
