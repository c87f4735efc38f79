"""Shapes of the pool's accounts and leases answers (seed 003), for the OpenAPI document only:
the answers themselves are built by `pool.accounts`, `pool.credits` and `pool.leases`."""

from __future__ import annotations

from marshmallow import Schema, fields

from models.pool import ANONYMITIES, PROTOCOLS
from pool.credits import GRANT_TYPES, MAX_GRANT
from pool.leases import DEFAULT_DURATION_S, MAX_DURATION_S


class Ordered(Schema):
    class Meta:
        ordered = True


class PoolRegisterBodySchema(Ordered):
    email = fields.String(required=True)
    display_name = fields.String(allow_none=True)


class PoolUserSchema(Ordered):
    id = fields.String()
    email = fields.String()
    display_name = fields.String(allow_none=True)


class PoolIssuedKeySchema(Ordered):
    id = fields.String()
    key = fields.String(metadata={"description": "the raw pp_ key: shown only in this answer"})
    prefix = fields.String()
    label = fields.String()


class PoolRegisteredSchema(Ordered):
    user = fields.Nested(PoolUserSchema)
    api_key = fields.Nested(PoolIssuedKeySchema)


class PoolKeyBodySchema(Ordered):
    label = fields.String(metadata={"description": 'optional, default "default"'})


class PoolKeySchema(Ordered):
    id = fields.String()
    prefix = fields.String()
    label = fields.String()
    created_at = fields.String(metadata={"format": "date-time"})
    last_used_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    revoked_at = fields.String(allow_none=True, metadata={"format": "date-time"})


class PoolKeyListSchema(Ordered):
    items = fields.List(fields.Nested(PoolKeySchema))
    total_count = fields.Integer()


class PoolAccountSchema(Ordered):
    id = fields.String()
    email = fields.String()
    display_name = fields.String(allow_none=True)
    balance = fields.Integer()
    created_at = fields.String(metadata={"format": "date-time"})
    is_platform_admin = fields.Boolean()


class PoolTransactionSchema(Ordered):
    amount = fields.Integer(metadata={"description": "+ purchase/grant, - acquire"})
    tx_type = fields.String(metadata={"enum": [*GRANT_TYPES, "acquire"]})
    description = fields.String()
    created_at = fields.String(metadata={"format": "date-time"})


class PoolCreditsSchema(Ordered):
    balance = fields.Integer()
    recent_transactions = fields.List(
        fields.Nested(PoolTransactionSchema),
        metadata={"description": "the newest 20, newest first"},
    )


class PoolGrantBodySchema(Ordered):
    email = fields.String(metadata={"description": "the user's email, or give user_id"})
    user_id = fields.String()
    amount = fields.Integer(required=True, metadata={"minimum": 1, "maximum": MAX_GRANT})
    tx_type = fields.String(metadata={"enum": list(GRANT_TYPES), "default": "grant"})
    description = fields.String(metadata={"default": ""})


class PoolGrantSchema(Ordered):
    user_id = fields.String()
    email = fields.String()
    balance = fields.Integer()
    transaction = fields.Nested(PoolTransactionSchema)


class PoolLeasedProxySchema(Ordered):
    ip = fields.String()
    port = fields.Integer()
    protocol = fields.String(metadata={"enum": list(PROTOCOLS)})
    country = fields.String(allow_none=True)
    anonymity = fields.String(allow_none=True, metadata={"enum": list(ANONYMITIES)})
    id = fields.String(metadata={"description": "the pool proxy's id"})


class PoolProxyCredentialsSchema(Ordered):
    username = fields.String(allow_none=True)
    password = fields.String(allow_none=True)


class PoolAcquiredProxySchema(PoolLeasedProxySchema):
    credentials = fields.Nested(
        PoolProxyCredentialsSchema,
        metadata={
            "description": "only for a proxy that needs them, and only in the acquire answer "
            "(to the lessee); lease lists never show them"
        },
    )


class PoolAcquireBodySchema(Ordered):
    protocol = fields.String(metadata={"enum": list(PROTOCOLS)})
    country = fields.String(metadata={"description": "ISO 3166-1 alpha-2"})
    anonymity = fields.String(metadata={"enum": list(ANONYMITIES)})
    min_score = fields.Float(metadata={"description": "0-1"})
    lease_duration_seconds = fields.Integer(
        metadata={"default": DEFAULT_DURATION_S, "minimum": 1, "maximum": MAX_DURATION_S}
    )


class PoolAcquiredSchema(Ordered):
    lease_id = fields.String()
    proxy = fields.Nested(PoolAcquiredProxySchema)
    expires_at = fields.String(metadata={"format": "date-time"})
    credits_remaining = fields.Integer()


class PoolLeaseSchema(Ordered):
    lease_id = fields.String()
    proxy = fields.Nested(PoolLeasedProxySchema, allow_none=True)
    created_at = fields.String(metadata={"format": "date-time"})
    expires_at = fields.String(metadata={"format": "date-time"})
    released_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    status = fields.String(metadata={"enum": ["active", "released", "expired"]})
    user_id = fields.String()


class PoolLeaseListSchema(Ordered):
    items = fields.List(fields.Nested(PoolLeaseSchema))
    total_count = fields.Integer()
