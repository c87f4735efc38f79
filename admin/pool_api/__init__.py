"""The pool API (seed 003), served under `/pool` so a seed 003 client pointed at
`http://host:5000/pool` works unchanged.

Every answer under `/pool`, errors included, is in seed 003's shape:
`{"error": {"code", "message", "details"}}` — Flask's own 404/405 for unknown paths and
methods, 413/415, and unexpected exceptions (500 INTERNAL_ERROR, logged) alike; never the
Core API's envelope or an HTML page.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from admin.errors import HTTP_CODES
from pool.errors import PoolError

log = logging.getLogger("portcullis.pool")

bp = Blueprint("pool", __name__, url_prefix="/pool")


def error_response(error: PoolError, headers: dict | None = None):
    """`error` as seed 003's JSON, with the headers its status calls for."""
    response = jsonify(error.body())
    response.status_code = error.status
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pool"'
    if getattr(error, "retry_after_s", None):
        response.headers["Retry-After"] = str(error.retry_after_s)
    response.headers.update(headers or {})
    return response


@bp.errorhandler(PoolError)
def _pool_error(error: PoolError):
    return error_response(error)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    status = exc.code or 500
    message = exc.description or exc.name
    if status == 413:
        message = f"Request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    code = HTTP_CODES.get(status, exc.name.upper().replace(" ", "_"))
    return error_response(PoolError(status, code, message), headers)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.exception("unhandled error in %s %s", request.method, request.path)
    return error_response(
        PoolError(500, "INTERNAL_ERROR", "Internal error; the server log has details")
    )


@bp.before_app_request
def _routing_errors():
    """Unknown paths and methods under /pool match no view, so the blueprint's handlers
    would not see them: answer them here, before dispatch raises them, in the pool's shape."""
    routing = request.routing_exception
    under_pool = request.path == bp.url_prefix or request.path.startswith(bp.url_prefix + "/")
    if under_pool and isinstance(routing, NotFound | MethodNotAllowed):
        return _http_error(routing)
    return None


# Endpoint modules attach their routes to `bp` on import.
from admin.pool_api import (  # noqa: E402, F401
    accounts,
    health,
    judge,
    leases,
    proxies,
    reach,
    sources,
    stats,
)
