"""Pool health (`GET /stats/pool`) and the plugin registries (`GET /stats/plugins`)."""

from __future__ import annotations

import importlib
import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import isoformat_z
from models.pool import ANONYMITIES, PROTOCOLS, STATUSES, PoolCheck, PoolProxy, PoolSource

log = logging.getLogger("portcullis.pool")
TOP_COUNTRIES = 20


def _counts(session: Session, column, known: tuple[str, ...]) -> dict[str, int]:
    """Proxies per value of `column`: every known value present (0 when none), in order."""
    found = dict(
        session.execute(
            select(column, func.count()).where(column.is_not(None)).group_by(column)
        ).all()
    )
    return {value: int(found.get(value, 0)) for value in known}


def pool_stats(session: Session) -> dict:
    """Seed 003's pool health overview, plus `by_country` (top 20, most proxies first)."""
    total, avg_score, avg_latency = session.execute(
        select(func.count(), func.avg(PoolProxy.score), func.avg(PoolProxy.avg_latency_ms))
    ).one()
    sources_total, sources_active, last_scrape = session.execute(
        select(
            func.count(),
            func.count().filter(PoolSource.is_active.is_(True)),
            func.max(PoolSource.last_scraped_at),
        )
    ).one()
    last_validation = session.scalar(select(func.max(PoolCheck.created_at)))
    countries = session.execute(
        select(PoolProxy.country, func.count().label("n"))
        .where(PoolProxy.country.is_not(None))
        .group_by(PoolProxy.country)
        .order_by(func.count().desc(), PoolProxy.country)
        .limit(TOP_COUNTRIES)
    ).all()
    return {
        "total_proxies": int(total),
        "by_status": _counts(session, PoolProxy.status, STATUSES),
        "by_protocol": _counts(session, PoolProxy.protocol, PROTOCOLS),
        "by_anonymity": _counts(session, PoolProxy.anonymity, ANONYMITIES),
        "avg_score": None if avg_score is None else round(float(avg_score), 4),
        "avg_latency_ms": None if avg_latency is None else round(float(avg_latency), 1),
        "sources_active": int(sources_active or 0),
        "sources_total": int(sources_total),
        "last_scrape_at": isoformat_z(last_scrape),
        "last_validation_at": isoformat_z(last_validation),
        "by_country": {country: int(n) for country, n in countries},
    }


def _registry(module: str, name: str):
    """A plugin registry of another part of the pool, or None while it does not exist yet."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        log.warning("plugin registry %s.%s is not available", module, name)
        return None


def plugin_stats(notifiers: list[dict] | None = None) -> dict:
    """Seed 003's plugin registry status: parsers, checkers, and `notifiers` (the platform
    notifiers with their health, which the admin works out: the pool does not know it)."""
    parsers = _registry("pool.parsers", "PARSERS") or {}
    checkers = _registry("pool.checkers", "CHECKERS") or []
    return {
        "parsers": [{"name": name, "type": "SourceParser"} for name in parsers],
        "checkers": [
            {"name": c.name, "stage": c.stage, "priority": c.priority}
            for c in sorted(checkers, key=lambda c: (c.stage, c.priority, c.name))
        ],
        "notifiers": list(notifiers or ()),
    }
