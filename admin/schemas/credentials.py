"""Credentials. `credentialSecret` is write-only and validated per auth type (see secrets.py)."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from admin.schemas.common import (
    ApiDateTime,
    ApiSchema,
    OwnedSchema,
    Timestamp,
    effect_field,
    name_field,
    region_field,
)
from models.enums import ALLOWED_AUTH_TYPES, AUTH_TYPE_ALIASES, AuthType, CredentialType

AUTH_TYPE_NAMES = [t.value for t in AuthType] + list(AUTH_TYPE_ALIASES)


class CredentialColumns(OwnedSchema):
    """A credential's own columns: what lists dump straight from rows (`ColumnDump`)."""

    credentialId = fields.String(attribute="id", dump_only=True)
    credentialName = name_field("name")
    credentialType = fields.String(
        attribute="credential_type",
        required=True,
        validate=validate.OneOf([t.value for t in CredentialType]),
    )
    credentialAuthType = fields.String(
        attribute="auth_type", required=True, validate=validate.OneOf(AUTH_TYPE_NAMES)
    )
    credentialRegion = region_field()
    credentialActive = fields.Boolean(attribute="active")
    credentialDefaultRuleEffect = effect_field()
    credentialExpiresAt = ApiDateTime(attribute="expires_at", allow_none=True)
    credentialTemporary = fields.Boolean(attribute="temporary", dump_only=True)
    credentialSettings = fields.Dict(attribute="settings", dump_only=True)
    # Raw here; validated against the auth type by `admin.schemas.secrets.load_secret`.
    credentialSecret = fields.Raw(load_only=True, allow_none=True)
    credentialCreatedAt = Timestamp(attribute="created_at", dump_only=True)
    credentialUpdatedAt = Timestamp(attribute="updated_at", dump_only=True)


class CredentialConnectionSchema(ApiSchema):
    """An OAuth2 credential's connection (`credential_grants`); never a token."""

    status = fields.String(
        dump_only=True, metadata={"enum": ["pending", "connected", "needs_reconnect"]}
    )
    connectedAt = Timestamp(attribute="connected_at", dump_only=True)
    lastRefreshAt = Timestamp(attribute="last_refresh_at", dump_only=True)
    accessExpiresAt = Timestamp(attribute="access_expires_at", dump_only=True)
    lastError = fields.String(attribute="last_error", dump_only=True, allow_none=True)
    lastErrorAt = Timestamp(attribute="last_error_at", dump_only=True)


class CredentialSchema(CredentialColumns):
    """A credential as the API takes and answers it; `credentialConnection` (read-only, so a
    fetched credential can be PUT back) is present for OAuth2 credentials that refresh
    tokens (authorization_code, refresh_token) and absent for every other credential."""

    credentialConnection = fields.Nested(CredentialConnectionSchema, dump_only=True)


class AuthorizationSchema(ApiSchema):
    """A Connect just started: where to send the person, and until when the link works."""

    authorizeUrl = fields.String(dump_only=True)
    expiresAt = Timestamp(dump_only=True)
    message = fields.String(dump_only=True, metadata={"example": "Success"})


def check_auth_type_allowed(credential_type: str, auth_type: AuthType) -> None:
    """`jwtVerify` is for proxy credentials only; oauth2, customToken, custom, none for targets."""
    if auth_type not in ALLOWED_AUTH_TYPES[CredentialType(credential_type)]:
        allowed = sorted(t.value for t in ALLOWED_AUTH_TYPES[CredentialType(credential_type)])
        raise ValidationError(
            {
                "credentialAuthType": [
                    f"{auth_type.value} is not available for {credential_type} credentials; "
                    f"use one of {', '.join(allowed)}."
                ]
            }
        )
