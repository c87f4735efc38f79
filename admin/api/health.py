"""`GET /health`: liveness, what the admin depends on (the store, with its kind), versions.

The body names each dependency as an object of its own (`"store": {...}`, and
`"redis": {...}` when PORTCULLIS_REDIS_URL is set). It never shows their URLs.
Either unreachable answers 503 `"degraded"`.
"""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, current_app, jsonify
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.exc import SQLAlchemyError

from admin.extensions import db
from admin.openapi import VERSION, doc
from models import current_config_version

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)
REDIS_TIMEOUT_S = 0.5


def _redis_client() -> redis.Redis | None:
    """One client per app (its pool reconnects by itself), or None without Redis."""
    url = current_app.config["PORTCULLIS_SETTINGS"].redis_url
    if not url:
        return None
    client = current_app.extensions.get("portcullis_redis")
    if client is None:
        client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        current_app.extensions["portcullis_redis"] = client
    return client


def _redis_status(client: redis.Redis) -> str:
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        log.warning("health check: Redis unreachable: %s", type(exc).__name__)
        return "unreachable"
    return "ok"


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
    body = {
        "status": "ok",
        "database": database,  # kept for existing callers; the same as store.status
        "store": {"kind": db.engine.dialect.name, "status": database},
        "version": VERSION,
        "configVersion": config_version,
    }
    client = _redis_client()
    if client is not None:
        body["redis"] = {"status": _redis_status(client)}
    healthy = database == "ok" and (client is None or body["redis"]["status"] == "ok")
    status = body["status"] = "ok" if healthy else "degraded"
    return jsonify(body), 200 if status == "ok" else 503
