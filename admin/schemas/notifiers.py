"""Notifiers as the Core API shows and takes them, and their delivery log."""

from __future__ import annotations

from datetime import UTC, datetime

from marshmallow import ValidationError, fields, validate

from admin.schemas.common import ApiSchema, Timestamp, name_field, validate_no_control_chars
from models.base import isoformat_z
from models.events import EVENTS
from models.notifier import DELIVERY_STATUSES, NOTIFIER_KINDS

MAX_PATTERNS = 50
MAX_RECIPIENTS = 20
MAX_URL_CHARS = 2000
MAX_PAGE = 100
HTTP_URL = validate.URL(schemes={"http", "https"}, require_tld=False)


def validate_pattern(value: str) -> None:
    """`*`, `prefix.*` (a prefix some event has) or an exact event name."""
    if value == "*" or value in EVENTS:
        return
    if value.endswith(".*") and any(name.startswith(value[:-1]) for name in EVENTS):
        return
    raise ValidationError(
        "Not an event pattern: use *, a prefix such as credits.*, or one of "
        + ", ".join(sorted(EVENTS))
        + "."
    )


class EpochTimestamp(fields.Field):
    """Epoch seconds rendered like every other timestamp."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else isoformat_z(datetime.fromtimestamp(value, UTC))


class NotifierSchema(ApiSchema):
    """A webhook or email channel for a client's events."""

    notifierId = fields.String(attribute="id", dump_only=True)
    clientId = fields.String(attribute="client_id", dump_only=True)
    name = name_field("name")
    type = fields.String(attribute="kind", required=True, validate=validate.OneOf(NOTIFIER_KINDS))
    subscribesTo = fields.List(
        fields.String(validate=validate_pattern),
        attribute="subscribes_to",
        required=True,
        validate=validate.Length(min=1, max=MAX_PATTERNS),
    )
    enabled = fields.Boolean(load_default=True)
    url = fields.String(
        allow_none=True,
        load_default=None,
        validate=[validate.Length(max=MAX_URL_CHARS), HTTP_URL, validate_no_control_chars],
        metadata={"description": "webhook only: where events are POSTed"},
    )
    recipients = fields.List(
        fields.Email(validate=validate.Length(max=320)),
        load_default=list,
        validate=validate.Length(max=MAX_RECIPIENTS),
        metadata={"description": "email only: who receives events"},
    )
    healthy = fields.Boolean(dump_only=True)
    lastDeliveryAt = EpochTimestamp(attribute="last_delivery_at", dump_only=True)
    createdAt = Timestamp(attribute="created_at", dump_only=True)
    signingSecret = fields.String(
        attribute="signing_secret",
        dump_only=True,
        metadata={"description": "whsec_...: only when created and when rotated"},
    )


class DeliverySchema(ApiSchema):
    """One event sent (or being sent) through a notifier."""

    deliveryId = fields.String(attribute="id", dump_only=True)
    event = fields.String(dump_only=True)
    eventId = fields.String(attribute="event_id", dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": list(DELIVERY_STATUSES)})
    attempts = fields.Integer(dump_only=True)
    lastStatus = fields.Integer(attribute="last_status", dump_only=True, allow_none=True)
    lastError = fields.String(attribute="last_error", dump_only=True, allow_none=True)
    createdAt = EpochTimestamp(attribute="created_at", dump_only=True)
    finishedAt = EpochTimestamp(attribute="finished_at", dump_only=True)


class DeliveryQuerySchema(ApiSchema):
    """A page of the delivery log, newest first: up to `limit`, after `nextToken`."""

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE))
    nextToken = fields.String(validate=validate.Length(min=1, max=200))
