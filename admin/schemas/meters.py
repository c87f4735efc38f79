"""Usage meters of a proxy: validated at write time, so the data plane never meets a bad one.

Errors name the field (`limits.day`, `extraction.path`, `predicates.bodyChecks.0.path`).
"""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from admin.schemas.common import (
    ApiSchema,
    OwnedSchema,
    Timestamp,
    name_field,
    validate_no_control_chars,
)
from admin.schemas.rules import (
    METHODS,
    PRESENCE_ALIASES,
    CheckSchema,
    check_rule_patterns,
    mcp_names,
)
from models.json_paths import JsonPathError, parse_path
from models.meter import EXTRACTION_LOCATIONS, METER_MODES, METER_TYPES
from models.meter_engine import LIMIT_MODES
from models.patterns import PatternError, check_flags, compile_pattern

MAX_LIMIT = 2**53  # counts beyond this are not exact in JSON readers
STRICT_BOOLEAN = {"truthy": {True}, "falsy": {False}}


def _json_path(value: str) -> None:
    try:
        parse_path(value)
    except JsonPathError as exc:
        raise ValidationError(str(exc)) from None


def _limit() -> fields.Integer:
    return fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=0, max=MAX_LIMIT)
    )


class MeterLimitsSchema(ApiSchema):
    """At most this many units per UTC window; omitted or null: no limit in that window."""

    minute = _limit()
    hour = _limit()
    day = _limit()
    month = _limit()


class ExtractionSchema(ApiSchema):
    location = fields.String(required=True, validate=validate.OneOf(EXTRACTION_LOCATIONS))
    path = fields.String(validate=_json_path)  # location body
    name = fields.String(validate=validate.Regexp(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}$"))
    event = fields.String(
        allow_none=True,
        validate=[validate.Length(min=1, max=200), validate_no_control_chars],
        metadata={
            "description": "location body on an event-stream answer: read only events of "
            "this name (e.g. message_delta); omitted: every event"
        },
    )

    @validates_schema
    def _one_source(self, data, **kwargs):
        if data.get("location") == "body":
            if "path" not in data:
                raise ValidationError("Required for location body.", "path")
            if "name" in data:
                raise ValidationError("Only for location header.", "name")
            if data.get("event") is None:
                data.pop("event", None)
        elif data.get("location") == "header":
            if "name" not in data:
                raise ValidationError("Required for location header.", "name")
            if "path" in data:
                raise ValidationError("Only for location body.", "path")
            if data.get("event") is not None:
                raise ValidationError("Only for location body.", "event")
            data.pop("event", None)


class MeterBodyCheckSchema(ApiSchema):
    """A JSON field of the request body: equal to `equals`, or a string matching `valuePattern`."""

    path = fields.String(required=True, validate=_json_path)
    equals = fields.Raw(allow_none=True)
    valuePattern = fields.String(validate=validate.Length(min=1, max=1000))

    @validates_schema
    def _one_test(self, data, **kwargs):
        if ("equals" in data) == ("valuePattern" in data):
            raise ValidationError("Give exactly one of equals and valuePattern.", "equals")
        if isinstance(data.get("equals"), dict | list):
            raise ValidationError("Must be a string, number, boolean or null.", "equals")


class PredicatesSchema(ApiSchema):
    """What a conditional meter counts: every given predicate must hold (rules' matching)."""

    methods = fields.List(fields.String(validate=validate.OneOf(METHODS)))
    pathPattern = fields.String(allow_none=True, validate=validate.Length(min=1, max=1000))
    pathPresence = fields.String(validate=validate.OneOf(sorted(PRESENCE_ALIASES)))
    headerChecks = fields.List(fields.Nested(CheckSchema))
    queryChecks = fields.List(fields.Nested(CheckSchema))
    bodyChecks = fields.List(fields.Nested(MeterBodyCheckSchema))
    mcpMethods = mcp_names("mcpMethods", "JSON-RPC methods (exact), e.g. tools/call; MCP proxies")
    mcpTools = mcp_names("mcpTools", "tool names (exact) of tools/call; MCP proxies")
    mcpToolsPresence = fields.String(validate=validate.OneOf(sorted(PRESENCE_ALIASES)))
    regexFlags = fields.String(validate=validate.Length(max=8))


class MeterSchema(OwnedSchema):
    meterId = fields.String(attribute="id", dump_only=True)
    proxyId = fields.String(attribute="proxy_id", dump_only=True)
    meterName = name_field("name")
    meterType = fields.String(
        attribute="meter_type", required=True, validate=validate.OneOf(METER_TYPES)
    )
    meterActive = fields.Boolean(attribute="active", **STRICT_BOOLEAN)
    meterMode = fields.String(attribute="mode", validate=validate.OneOf(METER_MODES))
    meterRegion = fields.String(attribute="region", dump_only=True)
    predicates = fields.Nested(PredicatesSchema)
    extraction = fields.Nested(ExtractionSchema, allow_none=True)
    limits = fields.Nested(MeterLimitsSchema)
    limitMode = fields.String(
        attribute="limit_mode",
        validate=validate.OneOf(LIMIT_MODES),
        metadata={
            "description": "response_value meters: reached (default) refuses once a window's "
            "count has reached its limit; estimate also when the average answer counted so far "
            "would take it past the limit. request_count meters always refuse the request "
            "that would pass the limit."
        },
    )
    meterCreatedAt = Timestamp(attribute="created_at", dump_only=True)
    meterUpdatedAt = Timestamp(attribute="updated_at", dump_only=True)


def check_meter(values: dict) -> dict:
    """Cross-field checks of a complete meter (after defaults or the stored values);
    patterns compiled with their flags. Returns the values to store. Errors name the field."""
    values = dict(values)
    values["limits"] = {k: v for k, v in (values.get("limits") or {}).items() if v is not None}
    predicates = dict(values.get("predicates") or {})
    if values["meter_type"] == "response_value" and not values.get("extraction"):
        raise ValidationError({"extraction": ["Required for response_value meters."]})
    if values["meter_type"] == "request_count" and values.get("extraction"):
        raise ValidationError({"extraction": ["Only response_value meters take an extraction."]})
    if values["mode"] == "conditional" and not any(
        predicates.get(key)
        for key in (
            "methods",
            "pathPattern",
            "headerChecks",
            "queryChecks",
            "bodyChecks",
            "mcpMethods",
            "mcpTools",
        )
    ):
        raise ValidationError({"predicates": ["A conditional meter needs at least one predicate."]})
    if values["mode"] == "all" and any(v not in (None, [], "") for v in predicates.values()):
        raise ValidationError({"predicates": ["Only conditional meters take predicates."]})
    try:
        flags = check_flags(predicates.get("regexFlags") or "")
    except PatternError as exc:
        raise ValidationError({"predicates": {"regexFlags": [str(exc)]}}) from None
    if predicates:
        predicates["regexFlags"] = flags
        for key in ("pathPresence", "mcpToolsPresence"):
            if key in predicates:
                predicates[key] = PRESENCE_ALIASES[predicates[key]]
        for key in ("mcpMethods", "mcpTools"):
            if key in predicates:
                predicates[key] = list(dict.fromkeys(predicates[key]))
        try:
            check_rule_patterns(
                {
                    "regex_flags": flags,
                    "path_pattern": predicates.get("pathPattern"),
                    "header_checks": predicates.get("headerChecks"),
                    "query_checks": predicates.get("queryChecks"),
                }
            )
        except ValidationError as exc:
            raise ValidationError({"predicates": exc.messages}) from None
        for index, check in enumerate(predicates.get("bodyChecks") or []):
            if check.get("valuePattern") is not None:
                try:
                    compile_pattern(check["valuePattern"], flags)
                except PatternError as exc:
                    raise ValidationError(
                        {"predicates": {"bodyChecks": {index: {"valuePattern": [str(exc)]}}}}
                    ) from None
    values["predicates"] = predicates
    return values
