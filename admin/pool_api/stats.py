"""`GET /pool/stats/pool` and `GET /pool/stats/plugins` (seed 003)."""

from __future__ import annotations

from admin.extensions import db
from admin.notify.platform import plugin_entries
from admin.openapi import pool_doc
from admin.pool_api import bp
from admin.pool_api.auth import require_key
from admin.pool_api.schemas import PoolPluginsSchema, PoolStatsSchema
from pool.stats import plugin_stats, pool_stats


@bp.get("/stats/pool")
@pool_doc("Pool health: counts, averages, sources", schema=PoolStatsSchema, errors=(401,))
@require_key
def get_pool_stats():
    """Pool health: counts by status, protocol, anonymity and country; averages; sources."""
    return pool_stats(db.session)


@bp.get("/stats/plugins")
@pool_doc(
    "The parser and checker registries, the platform notifiers and their health",
    schema=PoolPluginsSchema,
    errors=(401,),
)
@require_key
def get_plugin_stats():
    """The parsers and checkers this admin runs; the platform notifiers and their health."""
    return plugin_stats(plugin_entries(db.session))
