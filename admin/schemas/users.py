"""Users and their tokens."""

from marshmallow import fields, validate

from admin.auth import current_web_session, session_timeouts
from admin.schemas.common import ApiSchema, Timestamp, validate_name
from models.base import isoformat_z


class UserSchema(ApiSchema):
    userId = fields.String(attribute="id", dump_only=True)
    email = fields.String(dump_only=True)
    name = fields.String(dump_only=True, allow_none=True)
    userCreatedAt = Timestamp(attribute="created_at", dump_only=True)
    hasPassword = fields.Function(lambda user: user.password_hash is not None, dump_only=True)
    platformAdmin = fields.Boolean(attribute="platform_admin", dump_only=True)


class TokenSchema(ApiSchema):
    tokenId = fields.String(attribute="id", dump_only=True)
    label = fields.String(validate=[validate.Length(min=1, max=200), validate_name])
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


class WebSessionSchema(ApiSchema):
    """A signed-in web admin browser. Its secret is never shown: only a hash is stored."""

    sessionId = fields.String(attribute="id", dump_only=True)
    signedInWith = fields.String(
        attribute="signed_in_with", dump_only=True, metadata={"enum": ["password", "token"]}
    )
    tokenId = fields.String(attribute="token_id", dump_only=True, allow_none=True)
    address = fields.String(dump_only=True, allow_none=True)
    userAgent = fields.String(attribute="user_agent", dump_only=True, allow_none=True)
    createdAt = Timestamp(attribute="created_at", dump_only=True)
    lastSeenAt = Timestamp(attribute="last_seen_at", dump_only=True)
    expiresAt = fields.Function(
        lambda s: isoformat_z(session_timeouts().expires_at(s)),
        dump_only=True,
        metadata={"description": "When it ends if unused (idle or absolute timeout)"},
    )
    current = fields.Function(
        lambda s: getattr(current_web_session(), "id", None) == s.id,
        dump_only=True,
        metadata={"description": "Whether this is the session making the call"},
    )
