"""The Requests API: a proxy's request log, newest first (read-only)."""

from __future__ import annotations

from flask import request
from sqlalchemy import select

from admin.api.common import api_blueprint, one_page
from admin.api.proxies import proxy_for
from admin.errors import not_found
from admin.extensions import db
from admin.http import envelope
from admin.openapi import doc
from admin.schemas.requests import RequestLogDetailSchema, RequestLogQuerySchema, RequestLogSchema
from models import RequestLog

bp = api_blueprint("requests")


def _epoch_ms(value) -> int:
    return int(value.timestamp() * 1000)


@bp.get("/clients/<client_id>/proxies/<proxy_id>/requests")
@doc(
    "List a proxy's request log, newest first",
    "requests",
    envelope="requests",
    schema=RequestLogSchema,
    query=RequestLogQuerySchema().fields,
    errors=(400, 401, 404),
)
def list_requests(client_id: str, proxy_id: str):
    proxy = proxy_for(client_id, proxy_id)
    args = RequestLogQuerySchema().load(request.args.to_dict())
    query = select(RequestLog).where(RequestLog.proxy_id == proxy.id)
    if "processedAfter" in args:
        query = query.where(RequestLog.processed_at > _epoch_ms(args["processedAfter"]))
    if "processedBefore" in args:
        query = query.where(RequestLog.processed_at < _epoch_ms(args["processedBefore"]))
    query = query.order_by(RequestLog.processed_at.desc(), RequestLog.id)
    rows, limit_reached = one_page(query, args["limit"])
    return envelope(
        "requests",
        RequestLogSchema(many=True).dump(rows),
        totalRequests=len(rows),
        limitReached=limit_reached,
    )


@bp.get("/clients/<client_id>/proxies/<proxy_id>/requests/<request_id>")
@doc(
    "Get one request, with its bounded and redacted bodies",
    "requests",
    envelope="requests",
    schema=RequestLogDetailSchema,
    errors=(401, 404),
)
def get_request(client_id: str, proxy_id: str, request_id: str):
    proxy = proxy_for(client_id, proxy_id)
    row = db.session.get(RequestLog, request_id)
    if row is None or row.proxy_id != proxy.id:
        raise not_found("Request")
    return envelope("requests", [RequestLogDetailSchema().dump(row)])
