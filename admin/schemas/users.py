"""Users and their tokens."""

from marshmallow import fields, validate

from admin.schemas.common import ApiSchema, Timestamp


class UserSchema(ApiSchema):
    userId = fields.String(attribute="id", dump_only=True)
    email = fields.String(dump_only=True)
    name = fields.String(dump_only=True, allow_none=True)
    userCreatedAt = Timestamp(attribute="created_at", dump_only=True)
    hasPassword = fields.Function(lambda user: user.password_hash is not None, dump_only=True)


class TokenSchema(ApiSchema):
    tokenId = fields.String(attribute="id", dump_only=True)
    label = fields.String(validate=validate.Length(min=1, max=200))
    hint = fields.String(dump_only=True)
    revoked = fields.Boolean(dump_only=True)
    createdAt = Timestamp(attribute="created_at", dump_only=True)
    lastUsedAt = Timestamp(attribute="last_used_at", dump_only=True)
    revokedAt = Timestamp(attribute="revoked_at", dump_only=True)


class NewTokenSchema(TokenSchema):
    """A token as created: the only time its value is shown."""

    token = fields.String(dump_only=True)


MIN_PASSWORD_LENGTH = 10


class PasswordSchema(ApiSchema):
    """Set or change your password; the current one is needed once one is set."""

    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=200)
    )
    currentPassword = fields.String(load_only=True)
