"""The Notifications API: system, user and client notifications (the hosted product's paths).

Lists are newest first, filter `unread`, page with `limit` + `nextToken`, and carry the
asking user's `unreadCount`. Fetching one marks it read for the asking user only.
Someone else's user notifications and a foreign client's are 404, as if absent.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from flask import request
from sqlalchemy import ColumnElement, and_, exists, func, or_, select

from admin.api.common import api_blueprint, load_body, one_page
from admin.auth import client_for, current_user
from admin.errors import ApiError, invalid, not_found
from admin.extensions import db
from admin.http import envelope, message_only
from admin.openapi import doc
from admin.schemas.notifications import (
    NewSystemNotificationSchema,
    NotificationQuerySchema,
    NotificationSchema,
    UnreadCountsSchema,
)
from models import Membership, Notification, NotificationRead
from models.events import Event, record_event
from models.json_limits import loads
from models.notification import mark_read

bp = api_blueprint("notifications")
BAD_TOKEN = "Not a nextToken this list gave out."


def read_by(user_id: str) -> ColumnElement[bool]:
    """Whether the notification of the row has been read by `user_id`."""
    return exists().where(
        NotificationRead.notification_id == Notification.id,
        NotificationRead.user_id == user_id,
    )


def system_scope() -> ColumnElement[bool]:
    return Notification.type == "system"


def user_scope(user_id: str) -> ColumnElement[bool]:
    return and_(Notification.type == "user", Notification.user_id == user_id)


def client_scope(client_id: str) -> ColumnElement[bool]:
    return and_(Notification.type == "client", Notification.client_id == client_id)


def encode_token(row: Notification) -> str:
    raw = f'["{row.created_at.isoformat()}", "{row.id}"]'.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str]:
    """The (created_at, id) a page ended at; 400 naming nextToken for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, notification_id = loads(raw, max_depth=2)
        moment = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError):
        raise invalid("nextToken", BAD_TOKEN) from None
    if moment.tzinfo is None or not isinstance(notification_id, str):
        raise invalid("nextToken", BAD_TOKEN)
    return moment.astimezone(UTC), notification_id


def dump(rows: list[Notification], user_id: str) -> list[dict]:
    """The answer items, `read` being whether `user_id` has read each."""
    ids = [row.id for row in rows]
    read = set(
        db.session.scalars(
            select(NotificationRead.notification_id).where(
                NotificationRead.user_id == user_id, NotificationRead.notification_id.in_(ids)
            )
        )
    ) if ids else set()  # fmt: skip
    items = NotificationSchema(many=True).dump(rows)
    for item in items:
        item["read"] = item["notificationId"] in read
    return items


def unread_count(scope: ColumnElement[bool], user_id: str) -> int:
    query = select(func.count(Notification.id)).where(scope, ~read_by(user_id))
    return db.session.scalar(query) or 0


def list_page(scope: ColumnElement[bool]):
    """One page of the notifications in `scope`, newest first, as the asking user sees them."""
    args = NotificationQuerySchema().load(request.args.to_dict())
    me = current_user().id
    query = select(Notification).where(scope)
    if args["unread"]:
        query = query.where(~read_by(me))
    if "nextToken" in args:
        created_at, last_id = decode_token(args["nextToken"])
        query = query.where(
            or_(
                Notification.created_at < created_at,
                and_(Notification.created_at == created_at, Notification.id < last_id),
            )
        )
    query = query.order_by(Notification.created_at.desc(), Notification.id.desc())
    rows, more = one_page(query, args["limit"])
    return envelope(
        "notifications",
        dump(rows, me),
        unreadCount=unread_count(scope, me),
        nextToken=encode_token(rows[-1]) if more else None,
    )


def open_one(scope: ColumnElement[bool], notification_id: str):
    """The notification, marked read for the asking user; 404 if it is not in `scope`."""
    notification = db.session.scalar(
        select(Notification).where(scope, Notification.id == notification_id)
    )
    if notification is None:
        raise not_found("Notification")
    me = current_user().id
    mark_read(db.session, notification.id, me)
    db.session.commit()
    return envelope("notifications", dump([notification], me))


def require_platform_admin() -> None:
    if not current_user().platform_admin:
        raise ApiError(
            403, "FORBIDDEN", "Only platform admins may post or delete system notifications"
        )


def own_user(user_id: str) -> str:
    """The asking user's id if `user_id` is it (or "me"); anyone else's notifications are 404."""
    me = current_user().id
    if user_id not in (me, "me"):
        raise not_found("User")
    return me


LIST_DOC = dict(
    envelope="notifications",
    schema=NotificationSchema,
    query=NotificationQuerySchema().fields,
    errors=(400, 401, 404),
)
ONE_DOC = dict(envelope="notifications", schema=NotificationSchema, errors=(401, 404))


@bp.get("/notifications/system")
@doc("List system notifications, newest first", "notifications", **LIST_DOC)
def list_system():
    return list_page(system_scope())


@bp.get("/notifications/system/<notification_id>")
@doc("Get one system notification, marking it read for you", "notifications", **ONE_DOC)
def get_system(notification_id: str):
    return open_one(system_scope(), notification_id)


@bp.post("/notifications/system")
@doc(
    "Post a system notification to every user (platform admins)",
    "notifications",
    body=NewSystemNotificationSchema,
    envelope="notifications",
    schema=NotificationSchema,
    status=201,
    errors=(400, 401, 403),
)
def post_system():
    require_platform_admin()
    values = load_body(NewSystemNotificationSchema())
    notification = record_event(
        db.session,
        Event(
            name="system.announcement",
            title=values["title"],
            message=values["message"],
            details={"postedBy": current_user().id},
        ),
    )
    db.session.commit()
    return envelope(
        "notifications", dump([notification], current_user().id), message="Posted", status=201
    )


@bp.delete("/notifications/system/<notification_id>")
@doc("Delete a system notification (platform admins)", "notifications", errors=(401, 403, 404))
def delete_system(notification_id: str):
    require_platform_admin()
    notification = db.session.scalar(
        select(Notification).where(system_scope(), Notification.id == notification_id)
    )
    if notification is None:
        raise not_found("Notification")
    db.session.delete(notification)
    db.session.commit()
    return message_only("Deleted")


@bp.get("/users/<user_id>/notifications")
@doc("List your user notifications, newest first", "notifications", **LIST_DOC)
def list_user(user_id: str):
    return list_page(user_scope(own_user(user_id)))


@bp.get("/users/<user_id>/notifications/<notification_id>")
@doc("Get one of your user notifications, marking it read", "notifications", **ONE_DOC)
def get_user(user_id: str, notification_id: str):
    return open_one(user_scope(own_user(user_id)), notification_id)


@bp.get("/clients/<client_id>/notifications")
@doc("List a client's notifications, newest first", "notifications", **LIST_DOC)
def list_client(client_id: str):
    client_for(client_id)
    return list_page(client_scope(client_id))


@bp.get("/clients/<client_id>/notifications/<notification_id>")
@doc("Get one client notification, marking it read for you", "notifications", **ONE_DOC)
def get_client(client_id: str, notification_id: str):
    client_for(client_id)
    return open_one(client_scope(client_id), notification_id)


@bp.get("/me/notifications/unread")
@doc(
    "Count your unread notifications: system, user, and per client you belong to",
    "notifications",
    schema=UnreadCountsSchema,
    returns_list=False,
    errors=(401,),
)
def my_unread():
    me = current_user().id
    system = unread_count(system_scope(), me)
    user = unread_count(user_scope(me), me)
    per_client = db.session.execute(
        select(Membership.client_id, func.count(Notification.id))
        .select_from(Membership)
        .outerjoin(
            Notification,
            and_(client_scope(Membership.client_id), ~read_by(me)),
        )
        .where(Membership.user_id == me)
        .group_by(Membership.client_id)
    ).all()
    clients = {client_id: count for client_id, count in per_client}
    total = system + user + sum(clients.values())
    return {"unread": {"system": system, "user": user, "clients": clients}, "total": total}
