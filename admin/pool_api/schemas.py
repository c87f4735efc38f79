"""Shapes of the pool API's answers (seed 003), for the OpenAPI document only: the answers
themselves are built by `pool.records`, `pool.query` and `pool.stats`."""

from __future__ import annotations

from marshmallow import Schema, fields

from models.pool import ANONYMITIES, PROTOCOLS, STATUSES
from pool.query import DEFAULT_LIMIT, MAX_LIMIT, ORDERS, SORTS


class PoolProxySchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    ip = fields.String(metadata={"description": "IPv4/IPv6 address or host name"})
    port = fields.Integer()
    protocol = fields.String(metadata={"enum": list(PROTOCOLS)})
    status = fields.String(metadata={"enum": list(STATUSES)})
    anonymity = fields.String(allow_none=True, metadata={"enum": list(ANONYMITIES)})
    exit_ip = fields.String(allow_none=True)
    country = fields.String(allow_none=True, metadata={"example": "US"})
    score = fields.Float(metadata={"description": "0-1"})
    avg_latency_ms = fields.Float(allow_none=True)
    uptime_pct = fields.Float(allow_none=True)
    last_checked_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    first_seen_at = fields.String(metadata={"format": "date-time"})
    tags = fields.Dict()
    has_credentials = fields.Boolean(
        metadata={"description": "present (true) only when the proxy has a username/password"}
    )


def page_schema(name: str, item: type[Schema]) -> type[Schema]:
    """Seed 003's page of `item` records: `items`, `next_cursor`, `total_count`."""
    return type(
        name,
        (Schema,),
        {
            "Meta": type("Meta", (), {"ordered": True}),
            "items": fields.List(fields.Nested(item)),
            "next_cursor": fields.String(allow_none=True),
            "total_count": fields.Integer(),
        },
    )


PoolProxyPageSchema = page_schema("PoolProxyPageSchema", PoolProxySchema)


class PoolCheckSchema(Schema):
    class Meta:
        ordered = True

    checker_name = fields.String()
    stage = fields.Integer()
    passed = fields.Boolean()
    latency_ms = fields.Float(allow_none=True)
    detail = fields.String()
    created_at = fields.String(metadata={"format": "date-time"})


class PoolProxyDetailSchema(Schema):
    class Meta:
        ordered = True

    proxy = fields.Nested(PoolProxySchema)
    recent_checks = fields.List(fields.Nested(PoolCheckSchema))


class PoolStatsSchema(Schema):
    class Meta:
        ordered = True

    total_proxies = fields.Integer()
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_protocol = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_anonymity = fields.Dict(keys=fields.String(), values=fields.Integer())
    avg_score = fields.Float(allow_none=True)
    avg_latency_ms = fields.Float(allow_none=True)
    sources_active = fields.Integer()
    sources_total = fields.Integer()
    last_scrape_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    last_validation_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    by_country = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "top 20"}
    )


class PoolPluginsSchema(Schema):
    class Meta:
        ordered = True

    parsers = fields.List(fields.Dict())
    checkers = fields.List(fields.Dict())
    notifiers = fields.List(fields.Dict())


PROXY_QUERY = {
    "status": fields.String(metadata={"enum": list(STATUSES)}),
    "protocol": fields.String(metadata={"enum": list(PROTOCOLS)}),
    "anonymity": fields.String(metadata={"enum": list(ANONYMITIES)}),
    "country": fields.String(metadata={"description": "ISO 3166-1 alpha-2, any case"}),
    "min_score": fields.Float(metadata={"description": "0-1"}),
    "max_latency_ms": fields.Float(),
    "min_uptime_pct": fields.Float(metadata={"description": "0-100"}),
    "verified_within_minutes": fields.Integer(),
    "sort": fields.String(metadata={"enum": list(SORTS), "default": "score"}),
    "order": fields.String(
        metadata={"enum": list(ORDERS), "description": "default desc; asc for latency"}
    ),
    "limit": fields.Integer(metadata={"default": DEFAULT_LIMIT, "maximum": MAX_LIMIT}),
    "cursor": fields.String(metadata={"description": "the previous page's next_cursor"}),
}
