"""Building blocks shared by the resource schemas."""

from __future__ import annotations

import re
from datetime import UTC

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from models.base import isoformat_z
from models.enums import RuleEffect
from models.names import name_problem

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
FORBIDDEN_VALUE_CHARS = re.compile(r"[\r\n\x00]")
REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Hop-by-hop and framing headers: set by the gateway itself, never by configuration.
MANAGED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class Timestamp(fields.Field):
    """A read-only timestamp rendered as `2024-01-22T13:00:00.000Z`."""

    def _serialize(self, value, attr, obj, **kwargs):
        return isoformat_z(value)


class ApiDateTime(fields.AwareDateTime):
    """An ISO 8601 input (UTC if no zone is given), rendered like every other timestamp."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return isoformat_z(value)


def validate_header_name(value: str) -> None:
    """A header the gateway may set: a valid token, not one it manages itself."""
    if not HEADER_NAME.fullmatch(value):
        raise ValidationError("Not a valid HTTP header name.")
    if value.lower() in MANAGED_HEADERS:
        raise ValidationError(f"{value} is managed by the gateway and cannot be set.")


def validate_header_value(value: str) -> None:
    if FORBIDDEN_VALUE_CHARS.search(value):
        raise ValidationError("Header values cannot contain CR, LF or NUL.")


def validate_no_control_chars(value: str) -> None:
    if FORBIDDEN_VALUE_CHARS.search(value):
        raise ValidationError("Cannot contain CR, LF or NUL.")


def validate_name(value: str) -> None:
    """A name or label: no control characters, line separators or bidi overrides
    (models/names.py)."""
    problem = name_problem(value)
    if problem:
        raise ValidationError(problem)


def validate_unique_header_names(value: dict) -> None:
    seen: dict[str, str] = {}
    for name in value:
        if name.lower() in seen:
            raise ValidationError(
                f"{seen[name.lower()]} and {name} are the same header (names ignore case)."
            )
        seen[name.lower()] = name


def validate_region(value: str) -> None:
    if not REGION.fullmatch(value):
        raise ValidationError(
            "Must be 1-63 lowercase letters, digits or '-', starting with a letter or digit."
        )


def name_field(data_key_attr: str, **kwargs) -> fields.String:
    """A required display name of 1-200 characters stored in `data_key_attr`,
    following the name rule (`validate_name`)."""
    return fields.String(
        attribute=data_key_attr,
        validate=[validate.Length(min=1, max=200), validate_name],
        **{"required": True, **kwargs},
    )


def region_field(attribute: str = "region") -> fields.String:
    return fields.String(attribute=attribute, required=True, validate=validate_region)


def effect_field(attribute: str = "default_rule_effect", **kwargs) -> fields.String:
    return fields.String(
        attribute=attribute,
        validate=validate.OneOf([e.value for e in RuleEffect]),
        **kwargs,
    )


def string_map(*, headers: bool = False, **kwargs) -> fields.Dict:
    """A JSON object of string → string: header names and values, or query parameters."""
    if headers:
        return fields.Dict(
            keys=fields.String(validate=validate_header_name),
            values=fields.String(validate=validate_header_value),
            validate=validate_unique_header_names,
            **kwargs,
        )
    return fields.Dict(
        keys=fields.String(validate=[validate.Length(min=1), validate_no_control_chars]),
        values=fields.String(validate=validate_no_control_chars),
        **kwargs,
    )


class ApiSchema(Schema):
    """Unknown input fields are errors; read-only fields sent back are ignored.

    Ignoring read-only fields lets a caller PUT back an object it fetched
    (and accepts the `clientId` / `userId` / `parentId` some examples send).
    """

    class Meta:
        unknown = RAISE
        ordered = True

    @pre_load
    def _drop_read_only(self, data, **kwargs):
        if not isinstance(data, dict):
            return data
        read_only = {
            field.data_key or name for name, field in self.fields.items() if field.dump_only
        }
        return {key: value for key, value in data.items() if key not in read_only}


class OwnedSchema(ApiSchema):
    """The key fields of every client-owned record (`pKey` is the parent's id, `sKey` its own)."""

    pKey = fields.String(attribute="client_id", dump_only=True)
    sKey = fields.String(attribute="id", dump_only=True)
    userId = fields.String(attribute="created_by", dump_only=True)
    clientId = fields.String(attribute="client_id", dump_only=True)
    parentId = fields.String(attribute="client_id", dump_only=True)
