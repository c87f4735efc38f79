"""The delivery worker: claims due deliveries, sends them, records each attempt, retries.

Several admin processes may run it at once: a delivery is claimed with a
conditional UPDATE (pending and due, or delivering with a lapsed claim) that only
one of them wins, and an attempt's outcome is written only while its claim still
holds. Sending happens outside any transaction. Failures are retried with the
async queue's policy (models/retry_policy.py: full-jitter backoff from
`notify_retry_base_ms`, at most 10 retries, within the delivery's window); out of
retries or time, the delivery ends `failed`.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from admin.notify.attempt import Attempt
from admin.notify.email import send_email
from admin.notify.secrets import open_signing_secret
from admin.notify.webhook import send_webhook
from models.crypto import KeyRing
from models.notifier import Notifier, NotifierDelivery
from models.retry_policy import RetryPolicy
from models.settings import Settings

log = logging.getLogger("portcullis.notify")
CLAIM_S = 60.0  # longer than one attempt can take (webhook: 5 s connect + 10 s read)
BATCH = 20
SENDERS = 4
_rng = random.SystemRandom()


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    claimed_until: float  # also the claim's token: the outcome is written only while it holds


def _due(now: float):
    D = NotifierDelivery
    return or_(
        and_(D.status == "pending", D.next_attempt_at <= now),
        and_(D.status == "delivering", D.claimed_until < now),
    )


def claim_due(session: Session, now: float, limit: int = BATCH) -> list[Claim]:
    """Claim up to `limit` due deliveries for this worker; commits."""
    D = NotifierDelivery
    ids = session.scalars(
        select(D.id).where(_due(now)).order_by(D.next_attempt_at).limit(limit)
    ).all()
    claims = []
    for delivery_id in ids:
        until = now + CLAIM_S + _rng.random() / 1000  # unique enough to tell claims apart
        won = session.execute(
            update(D)
            .where(D.id == delivery_id, _due(now))
            .values(status="delivering", claimed_until=until)
        ).rowcount
        if won:
            claims.append(Claim(delivery_id, until))
    session.commit()
    return claims


def attempt_delivery(
    delivery: NotifierDelivery, notifier: Notifier | None, settings: Settings, key_ring: KeyRing
) -> Attempt:
    """Send one delivery through its notifier (no store access)."""
    if notifier is None or not notifier.enabled:
        return Attempt.failed("the notifier is disabled", retry=False)
    if notifier.kind == "email":
        return send_email(settings, list(notifier.recipients or ()), delivery.payload)
    try:
        secret = open_signing_secret(notifier, key_ring)
    except Exception:  # a key that is gone or a sealed value that does not open
        log.exception("the signing secret of notifier %s cannot be opened", notifier.id)
        return Attempt.failed("the notifier's signing secret cannot be opened")
    return send_webhook(
        notifier.url or "", secret, delivery.event_id, delivery.payload, settings.allow_targets
    )


def outcome_values(
    delivery: NotifierDelivery, attempt: Attempt, policy: RetryPolicy, now: float
) -> dict:
    """The delivery's columns after `attempt`: delivered, pending again, or failed."""
    attempts = delivery.attempts + 1
    values = {
        "attempts": attempts,
        "last_status": attempt.status,
        "last_error": attempt.error,
        "claimed_until": None,
    }
    if attempt.delivered:
        return {**values, "status": "delivered", "finished_at": now}
    retry_at = None
    if attempt.retry:
        retry_at = policy.next_attempt(
            attempts_in_round=attempts,
            deadline_at=delivery.deadline_at,
            now=now,
            retry_after_s=None,
            rng=_rng,
        )
    if retry_at is None:
        return {**values, "status": "failed", "finished_at": now}
    return {**values, "status": "pending", "next_attempt_at": retry_at}


def deliver_claimed(
    sessions: sessionmaker, claim: Claim, settings: Settings, key_ring: KeyRing
) -> str | None:
    """Send one claimed delivery and record the attempt; the status it ended in."""
    with sessions() as session:
        delivery = session.get(NotifierDelivery, claim.delivery_id)
        if delivery is None or delivery.claimed_until != claim.claimed_until:
            return None  # deleted with its notifier, or claimed by someone else since
        notifier = session.get(Notifier, delivery.notifier_id)
        session.expunge_all()
        session.rollback()  # no transaction held open while sending
    attempt = attempt_delivery(delivery, notifier, settings, key_ring)
    policy = RetryPolicy(base_s=settings.notify_retry_base_ms / 1000)
    values = outcome_values(delivery, attempt, policy, time.time())
    with sessions() as session:
        D = NotifierDelivery
        written = session.execute(
            update(D)
            .where(D.id == claim.delivery_id, D.claimed_until == claim.claimed_until)
            .values(**values)
        ).rowcount
        session.commit()
    if not written:
        log.warning("delivery %s was claimed again while it was being sent", claim.delivery_id)
        return None
    if not attempt.delivered:
        log.info(
            "delivery %s attempt %d failed (%s): %s",
            claim.delivery_id,
            values["attempts"],
            values["status"],
            attempt.error,
        )
    return values["status"]


def deliver_due(sessions: sessionmaker, settings: Settings, key_ring: KeyRing) -> int:
    """One run of the worker: claim what is due and send it, a few at a time; how many."""
    with sessions() as session:
        claims = claim_due(session, time.time())
    if not claims:
        return 0
    with ThreadPoolExecutor(SENDERS, thread_name_prefix="portcullis-notify") as pool:
        list(pool.map(lambda c: deliver_claimed(sessions, c, settings, key_ring), claims))
    return len(claims)
