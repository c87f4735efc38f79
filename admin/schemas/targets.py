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
from models.egress import EgressError, parse_egress, public_egress


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


class EgressInput:
    """A validated `targetEgress` input, applied by `models.egress.apply_egress`.

    Not a plain dict, so it cannot be assigned to `Target.egress` by mistake (its
    proxy URL may still hold the userinfo that must only be stored sealed).
    """

    __slots__ = ("value",)

    def __init__(self, value: dict | None):
        self.value = value


class EgressField(fields.Field):
    """`targetEgress`: how the target's requests leave (`models/egress.py`).

    In: null or `{"mode": "direct"}`, `{"mode": "proxy", "url", "clearCredentials"}`,
    `{"mode": "pool", "protocol", "country", "anonymity", "minScore", "rotation",
    "stickySeconds"}`. Out: the same without userinfo (proxies add `hasCredentials`).
    """

    def __init__(self, **kwargs):
        super().__init__(
            allow_none=True,
            metadata={
                "type": "object",
                "nullable": True,
                "description": (
                    "null or {mode: direct}; {mode: proxy, url: "
                    "'socks5://user:pass@host:1080', clearCredentials}; {mode: pool, "
                    "protocol, country, anonymity, minScore, rotation: per_request|sticky, "
                    "stickySeconds}. Answers never hold the userinfo: hasCredentials says "
                    "whether credentials are sealed; an update with the same proxy host "
                    "and port and no userinfo keeps them."
                ),
                "example": {"mode": "proxy", "url": "socks5://proxy.example:1080"},
            },
            **kwargs,
        )

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if value is None:
            return EgressInput(None)
        return super().deserialize(value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            parse_egress(value)
        except EgressError as exc:
            raise ValidationError({exc.field: [exc.message]}) from None
        return EgressInput(value)

    def _serialize(self, value, attr, obj, **kwargs):
        return public_egress(obj)


class TargetColumns(OwnedSchema):
    """A target's plain columns: what lists dump straight from rows (`ColumnDump`)."""

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


class TargetSchema(TargetColumns):
    """A target as the API takes and answers it, with its `targetEgress`."""

    targetEgress = EgressField(attribute="egress")
