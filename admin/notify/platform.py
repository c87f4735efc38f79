"""Platform notifiers (`Notifier.client_id` None): a platform admin's webhooks and e-mail
channels for system and user events, such as the pool's. The CLI (`run_admin.py
pool-notifier`), the web's Pool → Notifiers page and `/pool/stats/plugins` share these."""

from __future__ import annotations

from marshmallow import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from admin.errors import ApiError, flatten_messages
from admin.notify.channels import check_channel
from admin.notify.health import notifier_health
from admin.notify.secrets import seal_signing_secret
from admin.notify.signing import new_secret
from admin.schemas.notifiers import NotifierSchema
from models.crypto import KeyRing
from models.events import Event, record_event
from models.notifier import Notifier, NotifierDelivery
from models.settings import Settings


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


def checked_values(settings: Settings, body: dict) -> dict:
    """A notifier body in the Core API's shape (`name`, `type`, `subscribesTo`, `url`,
    `recipients`, `enabled`), validated as client notifiers are (the same schema and
    channel check, the webhook URL under `PORTCULLIS_ALLOW_TARGETS`): model attributes, or
    an `ApiError` 400 INVALID_INPUT whose `details.fields` name the bad fields."""
    try:
        values = NotifierSchema().load(body)
    except ValidationError as exc:
        fields = flatten_messages(exc.messages)
        summary = "; ".join(f"{name}: {' '.join(m)}" for name, m in sorted(fields.items()))
        message = f"Invalid input: {summary}"
        raise ApiError(400, "INVALID_INPUT", message, {"fields": fields}) from None
    check_channel(values["kind"], values.get("url"), values["recipients"], settings.allow_targets)
    return values


def add_platform_notifier(
    session: Session, settings: Settings, key_ring: KeyRing, body: dict
) -> tuple[Notifier, str | None]:
    """Add a platform notifier from a Core-API-shaped `body` (see `checked_values`); a
    webhook's signing secret is returned, its only plain copy. Not committed."""
    values = checked_values(settings, body)
    notifier = Notifier(client_id=None, **values)
    secret = None
    if notifier.kind == "webhook":
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
