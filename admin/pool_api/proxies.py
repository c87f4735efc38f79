"""`GET /pool/proxies` and `GET /pool/proxies/<id>` (seed 003): any key holder reads the pool."""

from __future__ import annotations

from flask import request

from admin.extensions import db
from admin.openapi import pool_doc
from admin.pool_api import bp
from admin.pool_api.auth import require_key
from admin.pool_api.schemas import PROXY_QUERY, PoolProxyDetailSchema, PoolProxyPageSchema
from pool.query import list_proxies, parse_proxy_query, proxy_detail


@bp.get("/proxies")
@pool_doc(
    "Query the pool: filters, sorts, cursor pages", schema=PoolProxyPageSchema, query=PROXY_QUERY
)
@require_key
def get_proxies():
    """Filtered, sorted, keyset-paged proxies: {"items", "next_cursor", "total_count"}."""
    return list_proxies(db.session, parse_proxy_query(request.args))


@bp.get("/proxies/<proxy_id>")
@pool_doc("One proxy and its 20 newest checks", schema=PoolProxyDetailSchema, errors=(401, 404))
@require_key
def get_proxy(proxy_id: str):
    """One proxy and its 20 newest checks, newest first."""
    return proxy_detail(db.session, proxy_id)
