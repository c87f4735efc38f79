"""Whether a notifier's recent deliveries go through (`healthy`) and when it last delivered."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.notifier import NotifierDelivery

FAILED_ATTEMPTS_UNHEALTHY = 3
RECENT = 20


@dataclass(frozen=True)
class Health:
    healthy: bool
    last_delivery_at: float | None  # epoch s of the last successful delivery


def notifier_health(session: Session, notifier_id: str) -> Health:
    """Unhealthy when the most recently finished delivery failed, or the last three attempts
    all failed (counted over the newest deliveries; a delivery still being retried has failed
    every attempt so far). Healthy with no deliveries yet."""
    D = NotifierDelivery
    last_finished = session.scalars(
        select(D.status)
        .where(D.notifier_id == notifier_id, D.finished_at.is_not(None))
        .order_by(D.finished_at.desc())
        .limit(1)
    ).first()
    last_delivered = session.scalar(
        select(func.max(D.finished_at)).where(D.notifier_id == notifier_id, D.status == "delivered")
    )
    if last_finished == "failed":
        return Health(False, last_delivered)
    recent = session.execute(
        select(D.status, D.attempts)
        .where(D.notifier_id == notifier_id, D.attempts > 0)
        .order_by(D.created_at.desc())
        .limit(RECENT)
    ).all()
    failures = 0
    for status, attempts in recent:
        if status == "delivered":
            break
        failures += attempts
        if failures >= FAILED_ATTEMPTS_UNHEALTHY:
            return Health(False, last_delivered)
    return Health(True, last_delivered)
