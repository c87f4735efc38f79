"""The data plane's events (credits low/exhausted, rate or meter limit reached), to the store.

Hooks call `Events.rate_limit_reached` / `Events.credits` on mitmproxy's event loop:
they make the dedup key (a few string joins), check it against an in-memory set of keys
already sent, and only for a new key build the event and hand it to a batch writer, so a
flood of 429s (or every request of a client whose balance is low) costs a set lookup
each. The writer's thread calls
`models.events.record_event`. The store's unique dedup key settles races between
processes: the same condition reported by several workers is stored once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from addons.batch_writer import BatchWriter
from models.credit import format_credits
from models.events import Event, record_event
from models.settings import Settings
from models.store import make_engine

log = logging.getLogger("portcullis.events")
REMEMBERED_KEYS = 10_000  # the oldest are forgotten first: at worst, a key is sent again


def write_events(session: Session, events: list[Event]) -> None:
    """Record a batch of events (the writer thread); duplicates are skipped by the store."""
    for event in events:
        record_event(session, event)


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

    def rate_limit_reached(
        self, client_id: str, proxy_id: str, window: str, window_start: int, meter_id: str | None
    ) -> None:
        """`ratelimit.reached`: once per proxy (and meter), window and window start."""
        scope = f"{meter_id}/{window}" if meter_id else window
        key = f"ratelimit.reached:{proxy_id}:{scope}:{window_start}"
        self.emit_once(
            key, lambda: ratelimit_event(key, client_id, proxy_id, window, window_start, meter_id)
        )

    def credits(
        self, client_id: str, left: int, threshold: int, exhausted: bool, now: float
    ) -> None:
        """`credits.low` or `credits.exhausted`: once per client and UTC day."""
        name = "credits.exhausted" if exhausted else "credits.low"
        key = f"{name}:{client_id}:{int(now // 86400)}"
        self.emit_once(key, lambda: credits_event(key, name, client_id, left, threshold))

    def emit_once(self, key: str, make: Callable[[], Event]) -> None:
        """Queue the event `make` builds, unless this process queued one with `key` already."""
        if key in self._sent:
            return
        self._sent[key] = None
        if len(self._sent) > REMEMBERED_KEYS:
            self._sent.popitem(last=False)
        if self.writer is None:  # not running (never in a started data plane)
            log.error("event writer not started: %s lost", key)
            return
        self.writer.submit(make())


def ratelimit_event(
    key: str,
    client_id: str,
    proxy_id: str,
    window: str,
    window_start: int,
    meter_id: str | None,
) -> Event:
    what = f"meter {meter_id}'s limit" if meter_id else "rate limit"
    details = {"proxyId": proxy_id, "window": window, "windowStart": utc_minute(window_start)}
    if meter_id:
        details["meterId"] = meter_id
    return Event(
        name="ratelimit.reached",
        title=f"Proxy {proxy_id} reached its {what}",
        message=f"Requests to proxy {proxy_id} are refused (429) until this {window} ends.",
        details=details,
        client_id=client_id,
        dedup_key=key,
    )


def credits_event(key: str, name: str, client_id: str, left: int, threshold: int) -> Event:
    balance, low = format_credits(left), format_credits(threshold)
    if name == "credits.exhausted":
        title = "Credits used up: priced requests are refused"
        message = (
            f"The client's balance ({balance}) cannot pay for requests; they are answered 402."
        )
    else:
        title = "Credit balance is low"
        message = f"The client's balance is {balance}, below its low-budget threshold of {low}."
    return Event(
        name=name,
        title=title,
        message=message,
        details={"balance": balance, "lowBudgetThreshold": low},
        client_id=client_id,
        dedup_key=key,
    )
