"""Notifications as the Notifications API shows them, and what their lists and posts take."""

from marshmallow import fields, validate

from admin.schemas.common import ApiSchema, Timestamp, validate_name

MAX_PAGE = 100
MESSAGE_MAX_CHARS = 4000


class NotificationSchema(ApiSchema):
    """One notification; `read` is for the user asking."""

    pKey = fields.String(
        attribute="p_key",
        dump_only=True,
        metadata={"description": "SYSTEM_NOTIFICATION, the user id or the client id"},
    )
    sKey = fields.String(attribute="id", dump_only=True)
    notificationId = fields.String(attribute="id", dump_only=True)
    type = fields.String(dump_only=True, metadata={"enum": ["system", "user", "client"]})
    event = fields.String(dump_only=True, allow_none=True)
    title = fields.String(dump_only=True)
    message = fields.String(dump_only=True)
    details = fields.Dict(dump_only=True)
    read = fields.Boolean(dump_only=True)
    createdAt = Timestamp(attribute="created_at", dump_only=True)


class NotificationQuerySchema(ApiSchema):
    """A page of a list, newest first: `unread` only, up to `limit`, after `nextToken`."""

    unread = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE))
    nextToken = fields.String(validate=validate.Length(min=1, max=200))


class NewSystemNotificationSchema(ApiSchema):
    """A system notification a platform admin posts to every user."""

    title = fields.String(required=True, validate=[validate.Length(min=1, max=200), validate_name])
    message = fields.String(required=True, validate=validate.Length(min=1, max=MESSAGE_MAX_CHARS))


class UnreadCountsSchema(ApiSchema):
    """Unread notifications of the asking user, per kind (clients by id)."""

    unread = fields.Dict(dump_only=True)
    total = fields.Integer(dump_only=True)
