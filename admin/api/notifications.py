"""Client notifications (Notifications API): listed newest first; fetching one marks it read."""

from __future__ import annotations

from sqlalchemy import select

from admin.api.common import api_blueprint, owned
from admin.auth import client_for
from admin.extensions import db
from admin.http import envelope
from admin.openapi import doc
from admin.schemas.notifications import NotificationSchema
from models import Notification

bp = api_blueprint("notifications")


@bp.get("/clients/<client_id>/notifications")
@doc(
    "List a client's notifications, newest first",
    "notifications",
    envelope="notifications",
    schema=NotificationSchema,
    errors=(401, 404),
)
def list_notifications(client_id: str):
    client_for(client_id)
    query = (
        select(Notification)
        .where(Notification.client_id == client_id)
        .order_by(Notification.created_at.desc(), Notification.id)
    )
    items = db.session.scalars(query).all()
    return envelope("notifications", NotificationSchema(many=True).dump(items))


@bp.get("/clients/<client_id>/notifications/<notification_id>")
@doc(
    "Get one notification, marking it read",
    "notifications",
    envelope="notifications",
    schema=NotificationSchema,
    errors=(401, 404),
)
def get_notification(client_id: str, notification_id: str):
    client_for(client_id)
    notification = owned(Notification, client_id, notification_id, "Notification")
    notification.read = True
    db.session.commit()
    return envelope("notifications", [NotificationSchema().dump(notification)])
