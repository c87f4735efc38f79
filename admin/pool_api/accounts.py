"""Seed 003's accounts domain under `/pool`: `POST /auth/register` (no key), `POST/GET
/auth/keys`, `DELETE /auth/keys/<id>`, `GET /account`, `GET /account/credits`,
`GET /account/leases`, and the platform administrator's `POST /account/credits/grant`."""

from __future__ import annotations

from flask import g, request

from admin.extensions import db
from admin.openapi import pool_doc
from admin.pool_api import bp
from admin.pool_api.account_schemas import (
    PoolAccountSchema,
    PoolCreditsSchema,
    PoolGrantBodySchema,
    PoolGrantSchema,
    PoolIssuedKeySchema,
    PoolKeyBodySchema,
    PoolKeyListSchema,
    PoolLeaseListSchema,
    PoolRegisterBodySchema,
    PoolRegisteredSchema,
)
from admin.pool_api.auth import require_key, require_platform_admin
from admin.pool_api.bodies import body, optional_body, settings
from pool.accounts import (
    account_record,
    check_registration_open,
    count_registration,
    create_key,
    find_user,
    issued_key_record,
    list_keys,
    register,
    registered_record,
    revoke_key,
)
from pool.credits import credits_record, grant_credits, transaction_record
from pool.leases import active_leases


@bp.post("/auth/register")
@pool_doc(
    "Register: a user, its account (0 credits) and a first key, shown only here; no key needed",
    schema=PoolRegisteredSchema,
    body=PoolRegisterBodySchema,
    status=201,
    auth=False,
)
def post_register():
    """403 REGISTRATION_CLOSED when switched off; 429 TOO_MANY_REGISTRATIONS (Retry-After)
    past `pool_register_per_hour` attempts from one address; 409 EMAIL_TAKEN; 422."""
    check_registration_open(settings())
    count_registration(db.session, settings(), request.remote_addr)
    data = body()
    user, key, raw = register(db.session, settings(), data.get("email"), data.get("display_name"))
    return registered_record(user, key, raw), 201


@bp.post("/auth/keys")
@pool_doc(
    "Another key for the key's user, shown only in this answer",
    schema=PoolIssuedKeySchema,
    body=PoolKeyBodySchema,
    status=201,
    errors=(400, 401, 409, 413, 422),
)
@require_key
def post_key():
    """A new key (body optional: `{"label"}`); 409 TOO_MANY_KEYS past 50 live keys."""
    key, raw = create_key(db.session, g.pool_user, optional_body().get("label"))
    return issued_key_record(key, raw), 201


@bp.get("/auth/keys")
@pool_doc(
    "The user's keys (prefix and dates, never the key)", schema=PoolKeyListSchema, errors=(401,)
)
@require_key
def get_keys():
    """Live keys first, then revoked ones, newest first."""
    items = list_keys(db.session, g.pool_user.id)
    return {"items": items, "total_count": len(items)}


@bp.delete("/auth/keys/<key_id>")
@pool_doc("Revoke one of your keys (the one in use too)", status=204, errors=(401, 404))
@require_key
def delete_key(key_id: str):
    """Revoke the user's key; 404 KEY_NOT_FOUND for an unknown key or someone else's."""
    revoke_key(db.session, g.pool_user.id, key_id)
    return "", 204


@bp.get("/account")
@pool_doc("Who the key belongs to, and the balance", schema=PoolAccountSchema, errors=(401,))
@require_key
def get_account():
    return account_record(db.session, g.pool_user)


@bp.get("/account/credits")
@pool_doc("Balance and the newest 20 transactions", schema=PoolCreditsSchema, errors=(401,))
@require_key
def get_credits():
    return credits_record(db.session, g.pool_user.id)


@bp.get("/account/leases")
@pool_doc("Your active leases, newest first", schema=PoolLeaseListSchema, errors=(401,))
@require_key
def get_leases():
    items = active_leases(db.session, g.pool_user.id)
    return {"items": items, "total_count": len(items)}


@bp.post("/account/credits/grant")
@pool_doc(
    "Add credits to a user's account (platform admin): tx_type grant or purchase",
    schema=PoolGrantSchema,
    body=PoolGrantBodySchema,
    status=201,
    errors=(400, 401, 403, 404, 413, 422),
)
@require_key
def post_grant():
    """Body `{"email" or "user_id", "amount", "tx_type", "description"}`; 404 USER_NOT_FOUND."""
    require_platform_admin()
    data = body()
    user = find_user(db.session, data.get("email"), data.get("user_id"))
    transaction, new_balance = grant_credits(
        db.session,
        settings(),
        user.id,
        data.get("amount"),
        data.get("tx_type", "grant"),
        data.get("description", ""),
        g.pool_user.id,
    )
    db.session.commit()
    return {
        "user_id": user.id,
        "email": user.email,
        "balance": new_balance,
        "transaction": transaction_record(transaction),
    }, 201
