"""Request log entries as the Requests API shows them (seed 001)."""

from marshmallow import fields, validate

from admin.schemas.common import ApiDateTime, ApiSchema
from models.request_log import RESPONSE_HEADERS, duration_ms, shown_proxy_data

MAX_LIMIT = 10000


def _proxy_data(row) -> dict:
    return shown_proxy_data(row.proxy_data)


def _duration_ms(row) -> int | None:
    return duration_ms(row.proxy_data)


def _string_map(description: str) -> dict:
    return {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": description,
    }


class RequestLogSchema(ApiSchema):
    pKey = fields.String(attribute="proxy_id", dump_only=True)
    sKey = fields.String(attribute="id", dump_only=True)
    requestId = fields.String(attribute="id", dump_only=True)
    userId = fields.String(attribute="user_id", dump_only=True)
    clientId = fields.String(attribute="client_id", dump_only=True)
    parentId = fields.String(attribute="proxy_id", dump_only=True)
    processed = fields.Constant(True, dump_only=True)
    processedAt = fields.Integer(attribute="processed_at", dump_only=True)
    TTL = fields.Integer(attribute="expires_at", dump_only=True)
    proxyData = fields.Function(_proxy_data, dump_only=True, metadata={"type": "object"})
    targetData = fields.Dict(attribute="target_data", dump_only=True, allow_none=True)
    validationData = fields.Dict(attribute="validation_data", dump_only=True)


class RequestLogDetailSchema(RequestLogSchema):
    """One entry with seed 001's flat detail fields beside the nested data they come from."""

    method = fields.Function(
        lambda row: row.proxy_data.get("method"), dump_only=True, metadata={"type": "string"}
    )
    path = fields.Function(
        lambda row: row.proxy_data.get("apiPath"),
        dump_only=True,
        metadata={"type": "string", "description": "The path after the proxy id"},
    )
    statusCode = fields.Function(
        lambda row: row.proxy_data.get("status"),
        dump_only=True,
        metadata={"type": "integer", "description": "The status the caller got"},
    )
    duration = fields.Function(
        _duration_ms,
        dump_only=True,
        metadata={"type": "integer", "description": "Milliseconds the gateway took (proxy leg)"},
    )
    requestHeaders = fields.Function(
        lambda row: row.proxy_data.get("apiHeaders", {}),
        dump_only=True,
        metadata=_string_map("The caller's headers, credentials and cookies redacted"),
    )
    responseHeaders = fields.Function(
        lambda row: row.proxy_data.get(RESPONSE_HEADERS),
        dump_only=True,
        metadata=_string_map(
            "The headers the caller got, Set-Cookie, credentials and injected secrets "
            "redacted; null for entries logged before they were kept"
        ),
    )
    requestBody = fields.String(attribute="request_body", dump_only=True, allow_none=True)
    responseBody = fields.String(attribute="response_body", dump_only=True, allow_none=True)


class RequestLogQuerySchema(ApiSchema):
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=MAX_LIMIT))
    processedAfter = ApiDateTime()
    processedBefore = ApiDateTime()
