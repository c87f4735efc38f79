"""`GET /pool/health` (seed 003's system endpoint): the pool's dependencies, no key needed.

Seed 003's fields: `status` ("healthy" or "degraded", then 503), `postgres` and `redis`
("connected" or "unreachable"; "not used" when the store is SQLite or Redis is not
configured), `version`; and `store` with the store's kind, as the admin's `/health` says.
"""

from __future__ import annotations

from flask import jsonify
from marshmallow import Schema, fields

from admin.api.health import probe_dependencies
from admin.openapi import VERSION, pool_doc
from admin.pool_api import bp

WORDS = {"ok": "connected", "unreachable": "unreachable", None: "not used"}


class PoolHealthSchema(Schema):
    status = fields.String(metadata={"enum": ["healthy", "degraded"]})
    postgres = fields.String(metadata={"enum": ["connected", "unreachable", "not used"]})
    redis = fields.String(metadata={"enum": ["connected", "unreachable", "not used"]})
    store = fields.Dict(metadata={"description": '{"kind": "sqlite" | "postgresql", "status"}'})
    version = fields.String()


@bp.get("/health")
@pool_doc(
    "Health of the pool's store and Redis (seed 003); no key needed",
    schema=PoolHealthSchema,
    auth=False,
    errors=(),
)
def pool_health():
    found = probe_dependencies()
    store = WORDS[found.store]
    body = {
        "status": "healthy" if found.healthy else "degraded",
        "postgres": store if found.store_kind == "postgresql" else WORDS[None],
        "redis": WORDS[found.redis],
        "store": {"kind": found.store_kind, "status": store},
        "version": VERSION,
    }
    return jsonify(body), 200 if found.healthy else 503
