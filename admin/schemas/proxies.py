"""Proxies, with exactly the fields of seed 000 plus per-proxy rate limits."""

from __future__ import annotations

import re

from flask import current_app
from marshmallow import ValidationError, fields, validate

from admin.schemas.common import (
    OwnedSchema,
    Timestamp,
    effect_field,
    name_field,
    region_field,
    string_map,
)

MAX_RESPONSE_BYTES = 2**40  # 1 TiB: larger is a typing error, not a limit
ALIAS = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def validate_alias(value: str) -> None:
    if not ALIAS.fullmatch(value):
        raise ValidationError(
            "Must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'."
        )


def _within(setting: str):
    def check(value: int) -> None:
        maximum = getattr(current_app.config["PORTCULLIS_SETTINGS"], setting)
        if not 1 <= value <= maximum:
            raise ValidationError(f"Must be between 1 and {maximum}.")

    return check


class ProxySchema(OwnedSchema):
    proxyId = fields.String(attribute="id", dump_only=True)
    proxyName = name_field("name")
    proxyRegion = region_field()
    proxyProxyCredentialId = fields.String(attribute="proxy_credential_id", required=True)
    proxyTargetId = fields.String(attribute="target_id", required=True)
    proxyTargetCredentialId = fields.String(attribute="target_credential_id", required=True)
    proxyActive = fields.Boolean(attribute="active")
    proxyDefaultRuleEffect = effect_field()
    proxyAlias = fields.String(attribute="alias", allow_none=True, validate=validate_alias)
    proxyAdditionalHeaders = string_map(headers=True, attribute="additional_headers")
    proxyAdditionalQueryParams = string_map(attribute="additional_query_params")
    proxyAdditionalData = fields.Dict(keys=fields.String(), attribute="additional_data")
    proxyMaxRequestsPerMinute = fields.Integer(
        attribute="max_requests_per_minute",
        strict=True,
        validate=_within("max_requests_per_minute"),
    )
    proxyMaxRequestsPerDay = fields.Integer(
        attribute="max_requests_per_day",
        strict=True,
        validate=_within("max_requests_per_day"),
    )
    # Issue 18: the largest target answer passed on (null: the gateway's default, 0: no limit)
    proxyMaxResponseBytes = fields.Integer(
        attribute="max_response_bytes",
        strict=True,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_RESPONSE_BYTES),
    )
    proxyMcp = fields.Boolean(attribute="mcp")  # the target is an MCP server (JSON-RPC)
    proxyCreatedAt = Timestamp(attribute="created_at", dump_only=True)
    proxyUpdatedAt = Timestamp(attribute="updated_at", dump_only=True)
