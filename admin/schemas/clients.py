"""Clients (organisations), their configuration and their members."""

from __future__ import annotations

from flask import current_app
from marshmallow import ValidationError, fields, validate, validates_schema

from admin.schemas.common import ApiSchema, Timestamp, name_field
from models.enums import Role

ROLE_NAMES = [r.value for r in Role]


class LimitsSchema(ApiSchema):
    requestsPerMinute = fields.Integer(strict=True)
    requestsPerDay = fields.Integer(strict=True)

    @validates_schema
    def _within_platform_maxima(self, data, **kwargs):
        settings = current_app.config["PORTCULLIS_SETTINGS"]
        maxima = {
            "requestsPerMinute": settings.max_requests_per_minute,
            "requestsPerDay": settings.max_requests_per_day,
        }
        for key, maximum in maxima.items():
            if key in data and not 1 <= data[key] <= maximum:
                raise ValidationError(f"Must be between 1 and {maximum}.", key)


class ConfigurationSchema(ApiSchema):
    limits = fields.Nested(LimitsSchema, required=True)


class ConfigurationBodySchema(ApiSchema):
    """`PUT /clients/{clientId}/configuration`."""

    configuration = fields.Nested(ConfigurationSchema, required=True)


class MemberSchema(ApiSchema):
    userId = fields.String(attribute="user_id", dump_only=True)
    email = fields.Function(lambda m: m.user.email, dump_only=True)
    name = fields.Function(lambda m: m.user.name, dump_only=True)
    roles = fields.List(
        fields.String(validate=validate.OneOf(ROLE_NAMES)),
        required=True,
        validate=validate.Length(min=1),
    )
    memberSince = Timestamp(attribute="created_at", dump_only=True)


class NewMemberSchema(MemberSchema):
    email = fields.Email(required=True)


class ClientSchema(ApiSchema):
    clientId = fields.String(attribute="id", dump_only=True)
    pKey = fields.String(attribute="id", dump_only=True)
    sKey = fields.String(attribute="id", dump_only=True)
    userId = fields.String(attribute="created_by", dump_only=True)
    clientName = name_field("name")
    clientMembers = fields.Method("_members", dump_only=True)
    configuration = fields.Nested(ConfigurationSchema)
    clientCreatedAt = Timestamp(attribute="created_at", dump_only=True)
    clientUpdatedAt = Timestamp(attribute="updated_at", dump_only=True)

    def _members(self, client) -> list[dict]:
        return [{"userId": m.user_id, "roles": list(m.roles)} for m in client.memberships]
