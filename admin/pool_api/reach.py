"""`POST /pool/proxies/test` (seed 003): whether good pool proxies reach a URL; any key."""

from __future__ import annotations

from marshmallow import Schema, fields

from admin.extensions import db
from admin.openapi import pool_doc
from admin.pool_api import bp
from admin.pool_api.auth import require_key
from admin.pool_api.bodies import body, key_ring, settings
from models.pool import ANONYMITIES, PROTOCOLS
from pool.reach import DEFAULT_COUNT, DEFAULT_TIMEOUT_S, MAX_COUNT, MAX_TIMEOUT_S, parse_test_body
from pool.reach import test_reachability as reachability


class PoolReachBodySchema(Schema):
    class Meta:
        ordered = True

    url = fields.String(
        required=True,
        metadata={"description": "http(s); its host must resolve to allowed addresses"},
    )
    count = fields.Integer(metadata={"default": DEFAULT_COUNT, "maximum": MAX_COUNT})
    timeout_seconds = fields.Integer(
        metadata={"default": DEFAULT_TIMEOUT_S, "maximum": MAX_TIMEOUT_S}
    )
    protocol = fields.String(metadata={"enum": list(PROTOCOLS)})
    country = fields.String(metadata={"description": "ISO 3166-1 alpha-2"})
    anonymity = fields.String(metadata={"enum": list(ANONYMITIES)})
    min_score = fields.Float(metadata={"description": "0-1"})


class PoolReachResultSchema(Schema):
    class Meta:
        ordered = True

    proxy_id = fields.String()
    ip = fields.String()
    port = fields.Integer()
    reachable = fields.Boolean()
    status_code = fields.Integer(allow_none=True)
    latency_ms = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)


class PoolReachSchema(Schema):
    class Meta:
        ordered = True

    url = fields.String()
    results = fields.List(fields.Nested(PoolReachResultSchema))
    success_rate = fields.Float(metadata={"description": "reachable / tried; 0.0 when none"})


@bp.post("/proxies/test")
@pool_doc(
    "Test whether good proxies reach a URL (free; URL under the SSRF policy)",
    schema=PoolReachSchema,
    body=PoolReachBodySchema,
    errors=(400, 401, 404, 413, 422),
)
@require_key
def post_proxies_test():
    """Up to `count` free active matching proxies fetch `url` concurrently."""
    request = parse_test_body(body())
    return reachability(
        settings(),
        key_ring(),
        db.session,
        request.url,
        request.count,
        request.timeout_s,
        request.filters,
    )
