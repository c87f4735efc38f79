"""`GET /health`: liveness, what the admin depends on (the store, with its kind), versions.

The body names each dependency as an object of its own (`"store": {...}`, and
`"redis": {...}` when PORTCULLIS_REDIS_URL is set). It never shows their URLs.
Either unreachable answers 503 `"degraded"`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Dependencies:
    """What the admin depends on, as one probe found them."""

    store_kind: str  # "sqlite" or "postgresql"
    store: str  # "ok" or "unreachable"
    config_version: int | None
    redis: str | None  # "ok", "unreachable", or None without PORTCULLIS_REDIS_URL

    @property
    def healthy(self) -> bool:
        return self.store == "ok" and self.redis in (None, "ok")


def probe_dependencies() -> Dependencies:
    """Ask the store (and Redis, when configured) whether they answer; never raises."""
    try:
        config_version = current_config_version(db.session)
        store = "ok"
    except SQLAlchemyError:
        log.exception("health check: store unreachable")
        db.session.rollback()
        config_version, store = None, "unreachable"
    client = _redis_client()
    return Dependencies(
        store_kind=db.engine.dialect.name,
        store=store,
        config_version=config_version,
        redis=None if client is None else _redis_status(client),
    )


@bp.get("/health")
@doc("Health of the admin and the store it depends on", "meta", auth=False)
def health():
    found = probe_dependencies()
    body = {
        "status": "ok" if found.healthy else "degraded",
        "database": found.store,  # kept for existing callers; the same as store.status
        "store": {"kind": found.store_kind, "status": found.store},
        "version": VERSION,
        "configVersion": found.config_version,
    }
    if found.redis is not None:
        body["redis"] = {"status": found.redis}
    return jsonify(body), 200 if found.healthy else 503
