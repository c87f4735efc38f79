"""Platform notifiers (`Notifier.client_id` None): a platform admin's webhooks and e-mail
channels for system and user events, such as the pool's. The CLI (`run_admin.py
pool-notifier`), the web's Pool → Notifiers page and `/pool/stats/plugins` share these."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from admin.notify.health import notifier_health
from admin.notify.secrets import seal_signing_secret
from admin.notify.signing import new_secret
from models.crypto import KeyRing
from models.events import Event, record_event
from models.notifier import Notifier, NotifierDelivery


def platform_notifiers(session: Session) -> list[Notifier]:
    """Every platform notifier, oldest first."""
    return list(
        session.scalars(
            select(Notifier)
            .where(Notifier.client_id.is_(None))
            .order_by(Notifier.created_at, Notifier.id)
        )
    )


def platform_notifier(session: Session, notifier_id: str) -> Notifier | None:
    """The platform notifier `notifier_id` (never a client's), or None."""
    return session.scalar(
        select(Notifier).where(Notifier.id == notifier_id, Notifier.client_id.is_(None))
    )


def plugin_entries(session: Session) -> list[dict]:
    """`/pool/stats/plugins` `notifiers`: name, healthy (as the notifier pages show it),
    subscribes_to, plus kind, id and enabled."""
    entries = []
    for notifier in platform_notifiers(session):
        entries.append(
            {
                "name": notifier.name,
                "healthy": notifier_health(session, notifier.id).healthy,
                "subscribes_to": list(notifier.subscribes_to or ()),
                "kind": notifier.kind,
                "id": notifier.id,
                "enabled": notifier.enabled,
            }
        )
    return entries


def add_platform_notifier(
    session: Session,
    key_ring: KeyRing,
    name: str,
    kind: str,
    subscribes_to: list[str],
    url: str | None = None,
    recipients: list[str] | None = None,
) -> tuple[Notifier, str | None]:
    """Add a platform notifier (validated by the caller); a webhook's signing secret is
    returned, its only plain copy. Not committed."""
    notifier = Notifier(
        client_id=None,
        name=name,
        kind=kind,
        subscribes_to=subscribes_to,
        enabled=True,
        url=url if kind == "webhook" else None,
        recipients=list(recipients or ()) if kind == "email" else [],
    )
    secret = None
    if kind == "webhook":
        secret = new_secret()
        seal_signing_secret(notifier, key_ring, secret)
    session.add(notifier)
    return notifier, secret


def remove_platform_notifier(session: Session, notifier: Notifier) -> None:
    """Delete a platform notifier and its delivery log. Not committed."""
    session.execute(delete(NotifierDelivery).where(NotifierDelivery.notifier_id == notifier.id))
    session.delete(notifier)


def send_platform_test(session: Session, notifier: Notifier) -> None:
    """Queue a `notifier.test` system event to this platform notifier only. Not committed."""
    event = Event(
        name="notifier.test",
        title=f"Test event from notifier {notifier.name}",
        message="This is a test event: the notifier works if you received it.",
        details={"notifierId": notifier.id},
    )
    record_event(session, event, to_notifiers={notifier.id})
