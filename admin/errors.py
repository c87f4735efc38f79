"""Errors as values: an HTTP status, a machine code and a message, in one JSON envelope.

{"message": "...", "error": {"code": "NOT_FOUND", "message": "...", "details": {}}}

Endpoints marked `@flat_errors` (the metrics history, after seed 004) answer the same
error flat instead: {"code": "NOT_FOUND", "message": "...", "details": {}}.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, current_app, has_request_context, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL_ERROR",
}


class ApiError(Exception):
    """An error answered to the caller as it is."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} not found")


def invalid(field: str, message: str) -> ApiError:
    """A 400 naming one bad field."""
    return ApiError(
        400,
        "INVALID_INPUT",
        f"Invalid input: {field}: {message}",
        {"fields": {field: [message]}},
    )


def conflict(message: str, details: dict | None = None) -> ApiError:
    return ApiError(409, "CONFLICT", message, details)


def flat_errors(view: Callable) -> Callable:
    """Mark a view whose errors are answered flat, `{code, message, details}` (seed 004)."""
    view.flat_errors = True
    return view


def _flat_errors_requested() -> bool:
    if not has_request_context() or request.endpoint is None:
        return False
    return getattr(current_app.view_functions.get(request.endpoint), "flat_errors", False)


def error_response(status: int, code: str, message: str, details: dict | None = None):
    error = {"code": code, "message": message, "details": details or {}}
    body = error if _flat_errors_requested() else {"message": message, "error": error}
    return jsonify(body), status


def flatten_messages(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict as `{"a.b.0.c": ["..."]}`."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "body"
            for sub_name, sub_messages in flatten_messages(value, name).items():
                flat.setdefault(sub_name, []).extend(sub_messages)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix or "body"] = list(messages)
    elif isinstance(messages, list):
        for message in messages:
            for sub_name, sub_messages in flatten_messages(message, prefix).items():
                flat.setdefault(sub_name, []).extend(sub_messages)
    else:
        flat[prefix or "body"] = [str(messages)]
    return flat


def validation_error(exc: ValidationError, prefix: str = ""):
    fields = flatten_messages(exc.messages, prefix)
    summary = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in sorted(fields.items()))
    return error_response(400, "INVALID_INPUT", f"Invalid input: {summary}", {"fields": fields})


def register_error_handlers(app: Flask) -> None:
    """Answer every error, including Flask's own, with the JSON envelope."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError):
        return validation_error(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = f"Request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        response, status = error_response(status, HTTP_CODES.get(status, exc.name.upper()), message)
        if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "INTERNAL_ERROR", "Internal error; the server log has details")
