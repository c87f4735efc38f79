"""Events: what happened, recorded as a notification and queued to subscribed notifiers.

`record_event` writes in the caller's transaction (an outbox): the notification
and its deliveries commit or roll back with whatever caused them. An event with a
`dedup_key` already stored creates nothing, so producers in several processes may
race to report the same condition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import isoformat_z, utcnow
from models.ids import new_id
from models.notification import Notification
from models.notifier import Notifier, NotifierDelivery
from models.retry_policy import RetryPolicy
from models.upsert import INSERTS

EVENTS: dict[str, str] = {
    "async.dead_letter": "An async request was given up after its retries",
    "credential.expiring": "A credential's secret or JWT expires soon",
    "credential.expired": "A credential's secret or JWT has expired",
    "credential.needs_reconnect": "An OAuth2 credential must be connected again",
    "credits.low": "A credit balance is low (a client's, or a pool account's)",
    "credits.exhausted": "Credits are used up (a client's, or a pool account's)",
    "lease.expired": "A pool proxy lease ran out",
    "ratelimit.reached": "A proxy's rate or meter limit was reached",
    "target.test_failed": "Testing a target failed",
    "proxy.pool_low": "The proxy pool (or a target's share of it) is running low",
    "invite.accepted": "Someone accepted an invite and joined the client",
    "member.added": "An owner added you to a client",
    "notifier.test": "A test event sent from a notifier's page",
    "system.announcement": "A platform admin posted a system notification",
}

TITLE_MAX_CHARS = 200
DEDUP_KEY_MAX_CHARS = 200  # the column's length


@dataclass(frozen=True)
class Event:
    """Something that happened. client_id: a client event; user_id: a user's; neither: system."""

    name: str
    title: str
    message: str
    details: dict = field(default_factory=dict)
    client_id: str | None = None
    user_id: str | None = None
    dedup_key: str | None = None  # e.g. "ratelimit.reached:prx_x:minute:2026-11-30T15:04"

    @property
    def kind(self) -> str:
        """The notification type this event makes: client, user or system."""
        if self.client_id is not None:
            return "client"
        return "user" if self.user_id is not None else "system"


def matches(pattern: str, name: str) -> bool:
    """Whether a subscription pattern covers an event: `*` all, `credits.*` a prefix, else exact."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return name.startswith(pattern[:-1])
    return pattern == name


def event_payload(event_id: str, event: Event, notification: Notification) -> dict:
    """The webhook body (and email source) of an event: Standard Webhooks' type/timestamp/data."""
    return {
        "id": event_id,
        "type": event.name,
        "timestamp": isoformat_z(notification.created_at),
        "clientId": event.client_id,
        "data": {
            "title": event.title,
            "message": event.message,
            "details": event.details,
            "notificationId": notification.id,
        },
    }


def record_event(
    session: Session, event: Event, *, to_notifiers: set[str] | None = None
) -> Notification | None:
    """Insert the event's notification and its deliveries in the caller's transaction.

    A client event is queued to each enabled notifier of the client subscribed to it; a
    system or user event to each enabled platform notifier (`client_id` None) subscribed to
    it. With `to_notifiers` (a notifier's test event) it goes to exactly those notifiers of
    the event's client (platform ones for a system event), whatever they subscribe to.
    Returns None, and writes nothing, when an event with the same dedup key is stored
    already. Does not commit.
    """
    if event.name not in EVENTS:
        raise ValueError(f"unknown event {event.name!r}")
    if event.dedup_key is not None and len(event.dedup_key) > DEDUP_KEY_MAX_CHARS:
        raise ValueError(f"dedup key longer than {DEDUP_KEY_MAX_CHARS} characters")
    notification_id = new_id("notification")
    created_at = utcnow()
    row = {
        "id": notification_id,
        "type": event.kind,
        "client_id": event.client_id,
        "user_id": event.user_id if event.client_id is None else None,
        "event": event.name,
        "dedup_key": event.dedup_key,
        "title": event.title[:TITLE_MAX_CHARS],
        "message": event.message,
        "details": event.details,
        "created_at": created_at,
    }
    if not insert_notification(session, row):
        return None
    notification = session.get(Notification, notification_id)
    assert notification is not None  # inserted just now in this transaction
    queue_deliveries(session, event, notification, to_notifiers)
    return notification


def insert_notification(session: Session, row: dict) -> bool:
    """Insert one notification row; False when its dedup key exists (the transaction survives)."""
    dialect = session.get_bind().dialect.name
    try:
        insert = INSERTS[dialect]
    except KeyError:
        raise NotImplementedError(f"event dedup is not implemented for {dialect}") from None
    statement = insert(Notification.__table__).values(row)
    if row["dedup_key"] is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["dedup_key"])
    inserted = session.execute(statement.returning(Notification.__table__.c.id)).first()
    return inserted is not None


def queue_deliveries(
    session: Session,
    event: Event,
    notification: Notification,
    to_notifiers: set[str] | None = None,
    now: float | None = None,
) -> list[NotifierDelivery]:
    """Pending deliveries of an event: see `record_event` for which notifiers. A client
    event goes to its client's notifiers only; any other event to platform notifiers only."""
    if event.client_id is not None:
        query = select(Notifier).where(Notifier.client_id == event.client_id)
    else:
        query = select(Notifier).where(Notifier.client_id.is_(None))
    if to_notifiers is None:
        query = query.where(Notifier.enabled.is_(True))
    else:
        query = query.where(Notifier.id.in_(to_notifiers))
    notifiers = session.scalars(query).all()
    now = time.time() if now is None else now
    window_s = RetryPolicy().window_s
    event_id = new_id("event")
    payload = event_payload(event_id, event, notification)
    deliveries = [
        NotifierDelivery(
            id=new_id("delivery"),
            notifier_id=notifier.id,
            event=event.name,
            event_id=event_id,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            deadline_at=now + window_s,
            created_at=now,
        )
        for notifier in notifiers
        if to_notifiers is not None
        or any(matches(pattern, event.name) for pattern in notifier.subscribes_to or ())
    ]
    session.add_all(deliveries)
    return deliveries
