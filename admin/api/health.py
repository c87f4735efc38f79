"""`GET /health`: liveness, what the admin depends on (the store, with its kind), versions.

The body names each dependency as an object of its own (`"store": {...}`), so
others (Redis) can be added beside it. It never shows the store's URL.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy.exc import SQLAlchemyError

from admin.extensions import db
from admin.openapi import VERSION, doc
from models import current_config_version

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/health")
@doc("Health of the admin and the store it depends on", "meta", auth=False)
def health():
    try:
        config_version = current_config_version(db.session)
        database = "ok"
    except SQLAlchemyError:
        log.exception("health check: store unreachable")
        db.session.rollback()
        config_version, database = None, "unreachable"
    status = "ok" if database == "ok" else "degraded"
    body = {
        "status": status,
        "database": database,  # kept for existing callers; the same as store.status
        "store": {"kind": db.engine.dialect.name, "status": database},
        "version": VERSION,
        "configVersion": config_version,
    }
    return jsonify(body), 200 if status == "ok" else 503
