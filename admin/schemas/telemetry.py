"""Query parameters of the telemetry (seed 000) and metrics history (seed 004) endpoints."""

from marshmallow import ValidationError, fields, validate, validates_schema

from admin.schemas.common import ApiDateTime, ApiSchema
from models.periods import POINT_SECONDS, RESOLUTIONS

MAX_TELEMETRY_LIMIT = 1000
MAX_STEP_S = 7 * 86400


class TelemetryQuerySchema(ApiSchema):
    interval = fields.String(load_default="hour", validate=validate.OneOf(RESOLUTIONS))
    startDate = ApiDateTime()
    endDate = ApiDateTime()
    limit = fields.Integer(
        load_default=100, validate=validate.Range(min=1, max=MAX_TELEMETRY_LIMIT)
    )

    @validates_schema
    def _range(self, data: dict, **kwargs) -> None:
        if "startDate" in data and "endDate" in data and data["startDate"] > data["endDate"]:
            raise ValidationError("Must not be after endDate.", "startDate")


class MetricsQuerySchema(ApiSchema):
    from_ = ApiDateTime(required=True, data_key="from")
    to = ApiDateTime(required=True)
    step = fields.Integer(validate=validate.Range(min=POINT_SECONDS, max=MAX_STEP_S))

    @validates_schema
    def _range(self, data: dict, **kwargs) -> None:
        if "from_" in data and "to" in data and data["from_"] > data["to"]:
            raise ValidationError("Must not be after to.", "from")


class TelemetryRecordSchema(ApiSchema):
    """One period of telemetry (seed 000), for the API description; maps are keyed by leg,
    `"code:leg"` or `"country:leg"`; the derived maps are computed on read."""

    pKey = fields.String(dump_only=True)
    sKey = fields.String(dump_only=True, metadata={"example": "2025-09-10-02"})
    proxyId = fields.String(dump_only=True)
    clientId = fields.String(dump_only=True)
    startsAt = fields.String(dump_only=True)
    countMap = fields.Dict(dump_only=True)
    successCountMap = fields.Dict(dump_only=True)
    errorCountMap = fields.Dict(dump_only=True)
    totalResponseTimeMap = fields.Dict(dump_only=True)
    codeCountMap = fields.Dict(dump_only=True)
    codeTotalRTMap = fields.Dict(dump_only=True)
    countryCountMap = fields.Dict(dump_only=True)
    countryTotalRTMap = fields.Dict(dump_only=True)
    averageResponseTimeMap = fields.Dict(dump_only=True)
    successRateMap = fields.Dict(dump_only=True)
    errorRateMap = fields.Dict(dump_only=True)
    countryAverageRTMap = fields.Dict(dump_only=True)
    responseTimeBucketCountMap = fields.Dict(dump_only=True)
    percentileResponseTimeMap = fields.Dict(dump_only=True)
    asyncCountMap = fields.Dict(dump_only=True)
    # Target-leg requests by the egress that carried them: "proxy" (a fixed proxy) or a
    # pool proxy's id; requests sent directly are not counted here.
    egressCountMap = fields.Dict(dump_only=True)
    egressTotalRTMap = fields.Dict(dump_only=True)
    # MCP proxies (issue 18): proxy-leg tools/call calls by tool name (each call of a batch
    # counts; names cut to 128 characters; past 16 distinct names in one request the rest
    # count as "(other)"), whatever became of them (see codeCountMap for the outcomes).
    toolCountMap = fields.Dict(
        dump_only=True,
        metadata={"description": "MCP tools/call calls by tool name (proxy leg).",
                  "example": {"search": 12, "read_file": 3}},
    )  # fmt: skip
    toolTotalRTMap = fields.Dict(
        dump_only=True,
        metadata={"description": "Total response time (ms) of the requests carrying each "
                  "tool's calls, by tool name (proxy leg)."},
    )  # fmt: skip
    ewmaResponseTime = fields.Float(dump_only=True, allow_none=True)


class MetricPointSchema(ApiSchema):
    """One metrics history point (seed 004)."""

    capturedAt = fields.String(dump_only=True)
    ttl = fields.Integer(dump_only=True)
    opn = fields.Integer(dump_only=True)
    rt1Ms = fields.Float(dump_only=True, allow_none=True)
    p90Ms = fields.Float(dump_only=True, allow_none=True)
    requests = fields.Integer(dump_only=True)
    errors = fields.Integer(dump_only=True)
    bytes = fields.Integer(dump_only=True)
    stepSeconds = fields.Integer(dump_only=True)
