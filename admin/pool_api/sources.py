"""Sources endpoints (seed 003): `GET/POST /pool/sources`, `PATCH/DELETE /pool/sources/<id>`,
`POST /pool/sources/<id>/scrape`. Any key holder reads; changes need a platform admin."""

from __future__ import annotations

from flask import request

from admin.extensions import db
from admin.openapi import pool_doc
from admin.pool_api import bp
from admin.pool_api.auth import require_key, require_platform_admin
from admin.pool_api.bodies import body, key_ring, settings
from admin.pool_api.source_schemas import (
    SOURCES_QUERY,
    PoolScrapeResultSchema,
    PoolSourceBodySchema,
    PoolSourcePageSchema,
    PoolSourcePatchSchema,
    PoolSourceSchema,
)
from models.store import make_session_factory
from pool.records import source_record
from pool.scrape import claimant_id, scrape_source
from pool.sources import (
    create_source,
    delete_source,
    get_source,
    list_sources,
    parse_list_args,
    update_source,
)

CLAIMANT = claimant_id()  # this process's name on the scrape leases it takes


@bp.get("/sources")
@pool_doc("List the sources, newest first", schema=PoolSourcePageSchema, query=SOURCES_QUERY)
@require_key
def get_sources():
    """A page of sources, newest first: {"items", "next_cursor", "total_count"}."""
    is_active, limit, cursor = parse_list_args(request.args)
    return list_sources(db.session, is_active, limit, cursor)


@bp.post("/sources")
@pool_doc(
    "Add a source (platform admin); parser_name omitted: detected from the URL",
    schema=PoolSourceSchema,
    body=PoolSourceBodySchema,
    status=201,
    errors=(400, 401, 403, 413, 422, 502),
)
@require_key
def post_source():
    """Add a source (201 with the source); `parser_name` omitted → auto-detected."""
    require_platform_admin()
    data = body()
    db.session.rollback()  # no transaction held while the URL may be fetched (auto-detect)
    source = create_source(db.session, settings(), data)
    db.session.commit()
    return source_record(source), 201


@bp.patch("/sources/<source_id>")
@pool_doc(
    "Change a source's given fields (platform admin)",
    schema=PoolSourceSchema,
    body=PoolSourcePatchSchema,
    errors=(400, 401, 403, 404, 413, 422, 502),
)
@require_key
def patch_source(source_id: str):
    """Change only the fields given."""
    require_platform_admin()
    data = body()
    db.session.rollback()  # as in POST: a `parser_name: null` fetches the URL
    source = get_source(db.session, source_id)
    update_source(db.session, settings(), source, data)
    db.session.commit()
    return source_record(source)


@bp.delete("/sources/<source_id>")
@pool_doc(
    "Delete a source; its proxies stay (platform admin)", status=204, errors=(401, 403, 404, 409)
)
@require_key
def remove_source(source_id: str):
    """Delete a source; its proxies stay in the pool."""
    require_platform_admin()
    delete_source(db.session, get_source(db.session, source_id))
    db.session.commit()
    return "", 204


@bp.post("/sources/<source_id>/scrape")
@pool_doc(
    "Scrape now, bypassing the schedule (platform admin)",
    schema=PoolScrapeResultSchema,
    errors=(401, 403, 404, 409, 422, 502),
)
@require_key
def post_scrape(source_id: str):
    """Scrape now, bypassing the schedule: seed 003's result with real counts."""
    require_platform_admin()
    get_source(db.session, source_id)  # 404 before any lease
    db.session.rollback()  # hold no transaction while the source is fetched
    sessions = make_session_factory(db.engine)
    return scrape_source(sessions, settings(), key_ring(), source_id, CLAIMANT)
