"""Notifications as the Notifications API shows them."""

from marshmallow import fields

from admin.schemas.common import ApiSchema, Timestamp


class NotificationSchema(ApiSchema):
    pKey = fields.String(attribute="client_id", dump_only=True)
    sKey = fields.String(attribute="id", dump_only=True)
    notificationId = fields.String(attribute="id", dump_only=True)
    type = fields.String(dump_only=True)
    title = fields.String(dump_only=True)
    message = fields.String(dump_only=True)
    details = fields.Dict(dump_only=True)
    read = fields.Boolean(dump_only=True)
    createdAt = Timestamp(attribute="created_at", dump_only=True)
