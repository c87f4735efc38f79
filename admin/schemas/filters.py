"""Payload filters: a retain or destroy action with a list of JSON paths.

Every path is parsed at write time (models/json_paths.py), so the data plane never
meets a bad one; a bad path is a 400 naming `paths` and the item's index.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from admin.schemas.common import OwnedSchema, Timestamp
from models.json_paths import JsonPathError, parse_path
from models.payload_filter import ACTIONS, MAX_PATHS


def validate_json_path(value: str) -> None:
    """A path text `models/json_paths.py` can parse; its reason is the error message."""
    try:
        parse_path(value)
    except JsonPathError as error:
        raise ValidationError(str(error)) from None


class FilterSchema(OwnedSchema):
    filterId = fields.String(attribute="id", dump_only=True)
    pKey = fields.String(attribute="parent_id", dump_only=True)
    parentId = fields.String(attribute="parent_id", dump_only=True)
    filterScope = fields.String(attribute="scope", dump_only=True)
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    paths = fields.List(
        fields.String(validate=validate_json_path),
        required=True,
        validate=validate.Length(min=1, max=MAX_PATHS),
    )
    notes = fields.String(allow_none=True, validate=validate.Length(max=2000))
    filterCreatedAt = Timestamp(attribute="created_at", dump_only=True)
    filterUpdatedAt = Timestamp(attribute="updated_at", dump_only=True)
