"""The rule explainer's request and answer."""

from marshmallow import ValidationError, fields, validate

from admin.schemas.common import ApiSchema, validate_no_control_chars

MAX_BODY_BYTES = 1024 * 1024


def _body_text(value: str) -> None:
    """At most MAX_BODY_BYTES as UTF-8 (the admin's JSON parser refuses lone surrogates)."""
    if len(value) > MAX_BODY_BYTES or len(value.encode()) > MAX_BODY_BYTES:
        raise ValidationError(f"Longer than {MAX_BODY_BYTES} bytes (UTF-8).")


class ExplainRequestSchema(ApiSchema):
    """A request as a caller would send it through the proxy."""

    method = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Za-z]{1,16}$", error="Not an HTTP method.")
    )
    path = fields.String(
        required=True,
        validate=[validate.Length(max=4096), validate_no_control_chars],
        metadata={"description": "the path below the proxy, e.g. /v1/customers"},
    )
    headers = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=200)),
        values=fields.String(validate=validate_no_control_chars),
        load_default=dict,
    )
    query = fields.String(
        load_default="",
        validate=[validate.Length(max=4096), validate_no_control_chars],
        metadata={"description": "the raw query string, e.g. a=1&b=2"},
    )
    body = fields.String(
        allow_none=True,
        validate=_body_text,
        metadata={
            "description": "the request body as text (at most 1 MiB), for rules that read "
            "the body; on an MCP proxy a POST's JSON-RPC call(s) are decided from it"
        },
    )


class ScopeExplanationSchema(ApiSchema):
    scope = fields.String(dump_only=True)
    allowed = fields.Boolean(dump_only=True)
    ruleId = fields.String(dump_only=True, allow_none=True)
    defaultEffect = fields.String(dump_only=True)
    matchedRules = fields.List(fields.Dict(), dump_only=True)


class RateLimitExplanationSchema(ApiSchema):
    window = fields.String(dump_only=True, metadata={"description": "`minute` or `day`"})
    limit = fields.Integer(
        dump_only=True, metadata={"description": "as enforced: capped by the platform maximum"}
    )


class MeterExplanationSchema(ApiSchema):
    meterId = fields.String(dump_only=True)
    meterName = fields.String(dump_only=True)
    meterType = fields.String(dump_only=True)
    limits = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        dump_only=True,
        metadata={"description": "limit per window; empty when the meter only counts"},
    )
    applies = fields.Boolean(
        dump_only=True,
        metadata={"description": "the request's method, path, headers and query match"},
    )
    dependsOnBody = fields.Boolean(
        dump_only=True,
        metadata={"description": "it also checks body fields and no `body` was given"},
    )


class McpCallExplanationSchema(ApiSchema):
    method = fields.String(dump_only=True, metadata={"description": "e.g. `tools/call`"})
    tool = fields.String(dump_only=True, allow_none=True)
    id = fields.Raw(dump_only=True, metadata={"description": "the JSON-RPC id; null: notification"})
    allowed = fields.Boolean(dump_only=True)
    scope = fields.String(dump_only=True, allow_none=True)
    ruleId = fields.String(dump_only=True, allow_none=True)


class FilterExplanationSchema(ApiSchema):
    filterId = fields.String(dump_only=True)
    scope = fields.String(
        dump_only=True,
        metadata={"description": "`targetCredential`, `target`, `proxyCredential` or `proxy`"},
    )
    action = fields.String(dump_only=True, metadata={"description": "`retain` or `destroy`"})
    paths = fields.List(fields.String(), dump_only=True)


class BodyRefusalSchema(ApiSchema):
    status = fields.Integer(dump_only=True, metadata={"description": "e.g. 413 or 415"})
    code = fields.String(dump_only=True, metadata={"description": "e.g. BODY_NOT_INSPECTABLE"})
    message = fields.String(dump_only=True)


class ExplanationSchema(ApiSchema):
    allowed = fields.Boolean(dump_only=True)
    scope = fields.String(dump_only=True, allow_none=True)
    ruleId = fields.String(dump_only=True, allow_none=True)
    bodyRefusal = fields.Nested(
        BodyRefusalSchema,
        dump_only=True,
        allow_none=True,
        metadata={"description": "why the gateway would refuse the body before any rule"},
    )
    path = fields.String(dump_only=True)
    readings = fields.List(
        fields.String(),
        dump_only=True,
        metadata={"description": "the paths rules were matched on (two if `;` parameters)"},
    )
    scopes = fields.List(
        fields.Nested(ScopeExplanationSchema),
        dump_only=True,
        metadata={
            "description": "per scope; for JSON-RPC calls, the first denied call's (or the first)"
        },
    )
    mcpCalls = fields.List(
        fields.Nested(McpCallExplanationSchema),
        dump_only=True,
        metadata={"description": "MCP proxies: each JSON-RPC call of the body, decided alone"},
    )
    rateLimits = fields.List(
        fields.Nested(RateLimitExplanationSchema),
        dump_only=True,
        metadata={"description": "the proxy's rate limits; every request counts toward them"},
    )
    meters = fields.List(
        fields.Nested(MeterExplanationSchema),
        dump_only=True,
        metadata={"description": "the proxy's active meters, in creation order"},
    )
    filters = fields.List(
        fields.Nested(FilterExplanationSchema),
        dump_only=True,
        metadata={"description": "payload filters in the order they run on a 2xx JSON answer"},
    )
