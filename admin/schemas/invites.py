"""Invites as the Invites API shows them, and what creating and accepting one takes."""

from marshmallow import fields, validate

from admin.schemas.clients import ROLE_NAMES
from admin.schemas.common import ApiSchema, Timestamp, validate_name
from admin.schemas.users import MIN_PASSWORD_LENGTH
from models.invite import INVITE_STATUSES

MAX_PASSWORD_LENGTH = 200  # as PasswordSchema (PUT /users/me/password)


class InviteSchema(ApiSchema):
    """An invite; its link (`inviteUrl`) is only in the answers that create one."""

    inviteId = fields.String(attribute="id", dump_only=True)
    email = fields.Email(required=True, validate=validate.Length(max=320))
    roles = fields.List(
        fields.String(validate=validate.OneOf(ROLE_NAMES)),
        required=True,
        validate=validate.Length(min=1),
    )
    status = fields.String(dump_only=True, metadata={"enum": list(INVITE_STATUSES)})
    createdAt = Timestamp(attribute="created_at", dump_only=True)
    expiresAt = Timestamp(attribute="expires_at", dump_only=True)
    lastSentAt = Timestamp(attribute="last_sent_at", dump_only=True)
    acceptedAt = Timestamp(attribute="accepted_at", dump_only=True)
    revokedAt = Timestamp(attribute="revoked_at", dump_only=True)


class SentInviteSchema(InviteSchema):
    """An invite just created or resent: its link, shown only this once, and whether it was
    e-mailed."""

    inviteUrl = fields.String(dump_only=True)
    emailed = fields.Boolean(dump_only=True)


class InviteQuerySchema(ApiSchema):
    status = fields.String(load_default="pending", validate=validate.OneOf(["pending", "all"]))


class InviteLinkSchema(ApiSchema):
    """What an invite link shows to whoever holds it (no sign-in needed)."""

    clientName = fields.String(dump_only=True)
    email = fields.String(dump_only=True)
    roles = fields.List(fields.String(), dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": list(INVITE_STATUSES)})
    expiresAt = fields.String(dump_only=True)
    accountExists = fields.Boolean(dump_only=True)


class InviteSignupSchema(ApiSchema):
    """A new account for the invite's email: a name and a password (as for any account)."""

    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), validate_name])
    password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH),
    )
