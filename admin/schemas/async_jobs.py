"""Async API jobs as the Core API shows them: status, every attempt, the final response."""

from __future__ import annotations

from datetime import UTC, datetime

from marshmallow import fields, validate

from admin.schemas.common import ApiSchema
from models.async_job import JOB_STATUSES, delivery_key
from models.base import isoformat_z
from models.redaction import bounded_body, redact_pairs

MAX_LIMIT = 1000
REQUEST_BODY_BYTES = 16 * 1024


def _time(epoch: float | None) -> str | None:
    return None if epoch is None else isoformat_z(datetime.fromtimestamp(epoch, UTC))


class EpochTime(fields.Field):
    """An epoch-seconds column rendered like every other timestamp."""

    def _serialize(self, value, attr, obj, **kwargs):
        return _time(value)


class AttemptSchema(ApiSchema):
    number = fields.Integer(dump_only=True)
    requestId = fields.String(attribute="request_id", dump_only=True)
    scheduledAt = EpochTime(attribute="scheduled_at", dump_only=True)
    startedAt = EpochTime(attribute="started_at", dump_only=True)
    finishedAt = EpochTime(attribute="finished_at", dump_only=True)
    durationMs = fields.Method("_duration", dump_only=True)
    status = fields.Integer(dump_only=True, allow_none=True)
    error = fields.String(dump_only=True, allow_none=True)

    @staticmethod
    def _duration(attempt) -> int | None:
        if attempt.finished_at is None:
            return None
        return round((attempt.finished_at - attempt.started_at) * 1000)


class AsyncJobSchema(ApiSchema):
    pKey = fields.String(attribute="proxy_id", dump_only=True)
    sKey = fields.String(attribute="id", dump_only=True)
    requestId = fields.String(attribute="id", dump_only=True)
    proxyId = fields.String(attribute="proxy_id", dump_only=True)
    clientId = fields.String(attribute="client_id", dump_only=True)
    status = fields.String(dump_only=True)
    method = fields.String(dump_only=True)
    path = fields.String(dump_only=True)
    query = fields.String(dump_only=True)
    idempotencyKey = fields.String(attribute="idempotency_key", dump_only=True, allow_none=True)
    # The Idempotency-Key header every delivery attempt carries, for matching the target's logs.
    deliveryKey = fields.Method("_delivery_key", dump_only=True)
    acceptedAt = EpochTime(attribute="accepted_at", dump_only=True)
    deadlineAt = EpochTime(attribute="deadline_at", dump_only=True)
    nextAttemptAt = EpochTime(attribute="next_attempt_at", dump_only=True)
    finishedAt = EpochTime(attribute="finished_at", dump_only=True)
    attemptCount = fields.Method("_attempt_count", dump_only=True)
    attempts = fields.List(fields.Nested(AttemptSchema), dump_only=True)
    lastError = fields.String(attribute="last_error", dump_only=True, allow_none=True)
    response = fields.Method("_response", dump_only=True, allow_none=True)

    @staticmethod
    def _delivery_key(job) -> str:
        return delivery_key(job.headers, job.id)

    @staticmethod
    def _attempt_count(job) -> int:
        return len(job.attempts)

    @staticmethod
    def _response(job) -> dict | None:
        if job.response_status is None:
            return None
        return {
            "status": job.response_status,
            "headers": redact_pairs(job.response_headers or []),
            "body": job.response_body,
        }


class AsyncJobDetailSchema(AsyncJobSchema):
    """One job, with the request as it was stored (credential removed, headers redacted)."""

    headers = fields.Method("_headers", dump_only=True)
    body = fields.Method("_body", dump_only=True, allow_none=True)

    @staticmethod
    def _headers(job) -> dict:
        return redact_pairs(job.headers)

    @staticmethod
    def _body(job) -> str | None:
        return bounded_body(job.body, REQUEST_BODY_BYTES, ())


class AsyncJobQuerySchema(ApiSchema):
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_LIMIT))
