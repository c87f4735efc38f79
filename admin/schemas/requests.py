"""Request log entries as the Requests API shows them (seed 001)."""

from marshmallow import fields, validate

from admin.schemas.common import ApiDateTime, ApiSchema

MAX_LIMIT = 10000


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
    proxyData = fields.Dict(attribute="proxy_data", dump_only=True)
    targetData = fields.Dict(attribute="target_data", dump_only=True, allow_none=True)
    validationData = fields.Dict(attribute="validation_data", dump_only=True)


class RequestLogDetailSchema(RequestLogSchema):
    requestBody = fields.String(attribute="request_body", dump_only=True, allow_none=True)
    responseBody = fields.String(attribute="response_body", dump_only=True, allow_none=True)


class RequestLogQuerySchema(ApiSchema):
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=MAX_LIMIT))
    processedAfter = ApiDateTime()
    processedBefore = ApiDateTime()
