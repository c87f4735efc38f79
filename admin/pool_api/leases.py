"""Seed 003's leases: `POST /pool/proxies/acquire` (costs 1 credit) and
`POST /pool/proxies/acquire/<lease_id>/release` (no refund)."""

from __future__ import annotations

from flask import g

from admin.extensions import db
from admin.openapi import pool_doc
from admin.pool_api import bp
from admin.pool_api.account_schemas import (
    PoolAcquireBodySchema,
    PoolAcquiredSchema,
    PoolLeaseSchema,
)
from admin.pool_api.auth import require_key
from admin.pool_api.bodies import key_ring, optional_body, settings
from pool.events import credits_changed
from pool.leases import acquire, release


@bp.post("/proxies/acquire")
@pool_doc(
    "Lease the best-scoring free matching active proxy; costs 1 credit",
    schema=PoolAcquiredSchema,
    body=PoolAcquireBodySchema,
    errors=(400, 401, 402, 404, 409, 413, 422),
)
@require_key
def post_acquire():
    """402 INSUFFICIENT_CREDITS, then 404 NO_MATCHING_PROXY, then 409 ALL_PROXIES_LEASED."""
    data = optional_body()
    leased = acquire(
        db.session,
        g.pool_user,
        g.pool_key.id,
        data,
        data.get("lease_duration_seconds"),
        key_ring(),
    )
    credits_changed(db.session, settings(), g.pool_user.id, leased["credits_remaining"])
    db.session.commit()
    return leased


@bp.post("/proxies/acquire/<lease_id>/release")
@pool_doc(
    "End your lease now; the proxy is free at once; the credit is not refunded",
    schema=PoolLeaseSchema,
    errors=(401, 404),
)
@require_key
def post_release(lease_id: str):
    """404 LEASE_NOT_FOUND for an unknown lease or someone else's; releasing twice is fine."""
    released = release(db.session, g.pool_user, lease_id)
    db.session.commit()
    return released
