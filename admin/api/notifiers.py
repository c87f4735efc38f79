"""Notifiers: a client's webhooks and e-mail channels for its events, and their delivery logs.

Reading needs membership of the client; creating, changing, deleting, rotating
a secret and sending a test event need the admin role. A webhook's URL is
checked by the SSRF policy when it is saved (and again at each delivery). The
signing secret is shown only in the answer that creates it (and on rotation).
Notifiers are not part of the data plane's configuration: no version bump.
"""

from __future__ import annotations

from flask import current_app, request
from sqlalchemy import and_, delete, or_, select

from admin.api.common import api_blueprint, assign, load_body, one_page, owned, reject_changes
from admin.auth import client_for
from admin.errors import ApiError, invalid
from admin.extensions import db
from admin.http import envelope
from admin.notify.channels import check_channel
from admin.notify.health import notifier_health
from admin.notify.secrets import seal_signing_secret
from admin.notify.signing import new_secret
from admin.openapi import doc
from admin.schemas.notifiers import (
    DeliveryQuerySchema,
    DeliverySchema,
    NotifierSchema,
)
from models.enums import Role
from models.events import Event, record_event
from models.notifier import Notifier, NotifierDelivery

bp = api_blueprint("notifiers")
ENVELOPE = "notifiers"


def _item(notifier: Notifier, signing_secret: str | None = None) -> dict:
    health = notifier_health(db.session, notifier.id)
    item = {
        column: getattr(notifier, column)
        for column in (
            "id",
            "client_id",
            "name",
            "kind",
            "subscribes_to",
            "enabled",
            "url",
            "recipients",
            "created_at",
        )
    }
    item.update(healthy=health.healthy, last_delivery_at=health.last_delivery_at)
    if signing_secret is not None:
        item["signing_secret"] = signing_secret
    return item


def _answer(notifier: Notifier, signing_secret: str | None = None, status: int = 200, **kw):
    return envelope(
        ENVELOPE, [NotifierSchema().dump(_item(notifier, signing_secret))], status=status, **kw
    )


def _notifier(client_id: str, notifier_id: str, role: Role = Role.USER) -> Notifier:
    client = client_for(client_id, role)
    return owned(Notifier, client.id, notifier_id, "Notifier")


@bp.get("/clients/<client_id>/notifiers")
@doc(
    "List a client's notifiers",
    "notifiers",
    envelope=ENVELOPE,
    schema=NotifierSchema,
    errors=(401, 404),
)
def list_notifiers(client_id: str):
    client = client_for(client_id)
    rows = db.session.scalars(
        select(Notifier)
        .where(Notifier.client_id == client.id)
        .order_by(Notifier.created_at, Notifier.id)
    ).all()
    return envelope(ENVELOPE, NotifierSchema(many=True).dump([_item(n) for n in rows]))


@bp.post("/clients/<client_id>/notifiers")
@doc(
    "Create a notifier (admin); a webhook's signing secret is shown in this answer only",
    "notifiers",
    body=NotifierSchema,
    envelope=ENVELOPE,
    schema=NotifierSchema,
    status=201,
    errors=(400, 401, 403, 404),
)
def create_notifier(client_id: str):
    client = client_for(client_id, Role.ADMIN)
    values = load_body(NotifierSchema())
    check_channel(values["kind"], values.get("url"), values["recipients"])
    notifier = Notifier(client_id=client.id, **values)
    secret = None
    if notifier.kind == "webhook":
        secret = new_secret()
        seal_signing_secret(notifier, current_app.config["PORTCULLIS_KEY_RING"], secret)
    db.session.add(notifier)
    db.session.commit()
    return _answer(notifier, secret, status=201)


@bp.get("/clients/<client_id>/notifiers/<notifier_id>")
@doc(
    "Get one notifier, with its health",
    "notifiers",
    envelope=ENVELOPE,
    schema=NotifierSchema,
    errors=(401, 404),
)
def get_notifier(client_id: str, notifier_id: str):
    return _answer(_notifier(client_id, notifier_id))


@bp.put("/clients/<client_id>/notifiers/<notifier_id>")
@doc(
    "Change a notifier (admin); fields left out keep their values, the type is fixed",
    "notifiers",
    body=NotifierSchema,
    envelope=ENVELOPE,
    schema=NotifierSchema,
    errors=(400, 401, 403, 404),
)
def update_notifier(client_id: str, notifier_id: str):
    notifier = _notifier(client_id, notifier_id, Role.ADMIN)
    values = load_body(NotifierSchema(), partial=True)
    reject_changes(notifier, values, {"kind": "type"})
    url = values.get("url", notifier.url)
    recipients = values.get("recipients", notifier.recipients or [])
    check_channel(notifier.kind, url, recipients)
    assign(notifier, values)
    db.session.commit()
    return _answer(notifier)


@bp.delete("/clients/<client_id>/notifiers/<notifier_id>")
@doc(
    "Delete a notifier (admin) and its delivery log",
    "notifiers",
    envelope=ENVELOPE,
    schema=NotifierSchema,
    errors=(401, 403, 404),
)
def delete_notifier(client_id: str, notifier_id: str):
    notifier = _notifier(client_id, notifier_id, Role.ADMIN)
    answer = NotifierSchema().dump(_item(notifier))
    db.session.execute(delete(NotifierDelivery).where(NotifierDelivery.notifier_id == notifier.id))
    db.session.delete(notifier)
    db.session.commit()
    return envelope(ENVELOPE, [answer], message="Deleted")


@bp.post("/clients/<client_id>/notifiers/<notifier_id>/rotate-secret")
@doc(
    "Replace a webhook's signing secret (admin); the new one is shown in this answer only",
    "notifiers",
    envelope=ENVELOPE,
    schema=NotifierSchema,
    errors=(401, 403, 404, 409),
)
def rotate_secret(client_id: str, notifier_id: str):
    notifier = _notifier(client_id, notifier_id, Role.ADMIN)
    if notifier.kind != "webhook":
        raise ApiError(409, "NOT_A_WEBHOOK", "Only webhook notifiers have a signing secret")
    secret = new_secret()
    seal_signing_secret(notifier, current_app.config["PORTCULLIS_KEY_RING"], secret)
    db.session.commit()
    return _answer(notifier, secret, message="Secret rotated: the old one no longer signs")


@bp.post("/clients/<client_id>/notifiers/<notifier_id>/test")
@doc(
    "Send a notifier.test event through this notifier only (admin)",
    "notifiers",
    envelope="deliveries",
    schema=DeliverySchema,
    status=202,
    errors=(401, 403, 404, 409),
)
def send_test(client_id: str, notifier_id: str):
    notifier = _notifier(client_id, notifier_id, Role.ADMIN)
    if not notifier.enabled:
        raise ApiError(
            409, "NOTIFIER_DISABLED", "This notifier is disabled: enable it to send a test event"
        )
    event = Event(
        name="notifier.test",
        title=f"Test event from notifier {notifier.name}",
        message="This is a test event: the notifier works if you received it.",
        details={"notifierId": notifier.id},
        client_id=notifier.client_id,
    )
    record_event(db.session, event, to_notifiers={notifier.id})
    queued = [row for row in db.session.new if isinstance(row, NotifierDelivery)]
    db.session.flush()
    answer = DeliverySchema(many=True).dump(queued)
    db.session.commit()
    return envelope("deliveries", answer, message="Test event queued", status=202)


def _after(token: str):
    """The keyset condition of a `nextToken` (`<created_at>|<delivery id>`)."""
    created, _, delivery_id = token.partition("|")
    try:
        created_at = float(created)
    except ValueError:
        raise invalid("nextToken", "Not a token this list gave.") from None
    D = NotifierDelivery
    return or_(D.created_at < created_at, and_(D.created_at == created_at, D.id < delivery_id))


@bp.get("/clients/<client_id>/notifiers/<notifier_id>/deliveries")
@doc(
    "A notifier's delivery log, newest first, a page at a time",
    "notifiers",
    envelope="deliveries",
    schema=DeliverySchema,
    query=DeliveryQuerySchema().fields,
    errors=(400, 401, 404),
)
def list_deliveries(client_id: str, notifier_id: str):
    notifier = _notifier(client_id, notifier_id)
    args = DeliveryQuerySchema().load(request.args.to_dict())
    D = NotifierDelivery
    query = select(D).where(D.notifier_id == notifier.id)
    if "nextToken" in args:
        query = query.where(_after(args["nextToken"]))
    rows, more = one_page(query.order_by(D.created_at.desc(), D.id.desc()), args["limit"])
    token = f"{rows[-1].created_at!r}|{rows[-1].id}" if more else None
    return envelope("deliveries", DeliverySchema(many=True).dump(rows), nextToken=token)
