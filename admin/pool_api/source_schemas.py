"""Shapes of the sources endpoints (seed 003), for the OpenAPI document only: the answers are
built by `pool.records.source_record` and `pool.scrape.scrape_source`, the bodies are
validated by `pool.sources`."""

from __future__ import annotations

from marshmallow import Schema, fields

from admin.pool_api.schemas import page_schema
from models.pool import PROTOCOLS
from pool.parsers import PARSERS
from pool.sources import DEFAULT_CRON, DEFAULT_LIMIT, MAX_LIMIT


class PoolSourceSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    url = fields.String(metadata={"description": "a password in it is shown as ***"})
    parser_name = fields.String(metadata={"enum": list(PARSERS)})
    cron_schedule = fields.String(metadata={"example": DEFAULT_CRON})
    default_protocol = fields.String(metadata={"enum": list(PROTOCOLS)})
    is_active = fields.Boolean()
    last_scraped_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    created_at = fields.String(metadata={"format": "date-time"})
    next_scrape_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    last_result = fields.Dict(allow_none=True)
    last_error = fields.String(allow_none=True)


PoolSourcePageSchema = page_schema("PoolSourcePageSchema", PoolSourceSchema)


class PoolSourcePatchSchema(Schema):
    """Every field optional: only those given change. `parser_name: null` detects again."""

    class Meta:
        ordered = True

    url = fields.String(metadata={"description": "http(s) URL of a proxy list"})
    parser_name = fields.String(
        allow_none=True,
        metadata={"enum": list(PARSERS), "description": "omitted/null: detected from the URL"},
    )
    cron_schedule = fields.String(
        metadata={"description": "5-field crontab, UTC (0/7 = Sunday)", "default": DEFAULT_CRON}
    )
    default_protocol = fields.String(metadata={"enum": list(PROTOCOLS), "default": "http"})
    is_active = fields.Boolean(metadata={"default": True})


class PoolSourceBodySchema(PoolSourcePatchSchema):
    url = fields.String(required=True, metadata={"description": "http(s) URL of a proxy list"})


class PoolScrapeResultSchema(Schema):
    class Meta:
        ordered = True

    source_id = fields.String()
    proxies_discovered = fields.Integer()
    proxies_new = fields.Integer()
    proxies_updated = fields.Integer()
    duration_ms = fields.Integer()


SOURCES_QUERY = {
    "is_active": fields.Boolean(),
    "limit": fields.Integer(metadata={"default": DEFAULT_LIMIT, "maximum": MAX_LIMIT}),
    "cursor": fields.String(metadata={"description": "the previous page's next_cursor"}),
}
