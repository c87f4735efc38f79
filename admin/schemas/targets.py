"""Targets: the upstream APIs."""

from __future__ import annotations

from urllib.parse import urlsplit

from marshmallow import ValidationError, fields, validate

from admin.schemas.common import (
    OwnedSchema,
    Timestamp,
    effect_field,
    name_field,
    region_field,
)


def validate_base_url(value: str) -> None:
    """http(s), a host, no userinfo (credentials belong in a credential), no query or fragment."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValidationError("Not a valid URL.") from exc
    if parts.scheme not in ("http", "https"):
        raise ValidationError("Must be an http or https URL.")
    if not parts.hostname:
        raise ValidationError("Must include a host.")
    if "@" in parts.netloc:
        raise ValidationError("Must not contain a username or password; use a target credential.")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValidationError(
            "Must not contain a query or fragment; use proxyAdditionalQueryParams for fixed "
            "query parameters."
        )
    if port == 0:
        raise ValidationError("Port must be between 1 and 65535.")
    if any(c.isspace() for c in value):
        raise ValidationError("Must not contain whitespace.")


def validate_test_path(value: str) -> None:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise ValidationError("Must be a path starting with '/', without whitespace.")


class TargetSchema(OwnedSchema):
    targetId = fields.String(attribute="id", dump_only=True)
    targetName = name_field("name")
    targetBaseURL = fields.String(
        attribute="base_url",
        required=True,
        validate=[validate.Length(min=1, max=2048), validate_base_url],
    )
    targetTestPath = fields.String(
        attribute="test_path",
        allow_none=True,
        validate=[validate.Length(max=2048), validate_test_path],
    )
    targetRegion = region_field()
    targetDefaultRuleEffect = effect_field()
    targetActive = fields.Boolean(attribute="active")
    targetCreatedAt = Timestamp(attribute="created_at", dump_only=True)
    targetUpdatedAt = Timestamp(attribute="updated_at", dump_only=True)
