"""Core API blueprints, each served under `/api/...` and (as the docs also show) without it."""

from __future__ import annotations

from flask import Flask

from admin.api import (
    async_jobs,
    budgets,
    clients,
    credentials,
    explain,
    filters,
    health,
    invites,
    members,
    meters,
    notifications,
    notifiers,
    proxies,
    requests,
    rules,
    targets,
    telemetry,
    users,
)
from admin.openapi import bp as openapi_bp
from admin.pool_api import bp as pool_bp

CORE_BLUEPRINTS = (
    users.bp,
    clients.bp,
    members.bp,
    credentials.bp,
    targets.bp,
    proxies.bp,
    rules.bp,
    meters.bp,
    filters.bp,
    explain.bp,
    requests.bp,
    telemetry.bp,
    async_jobs.bp,
    notifications.bp,
    notifiers.bp,
    budgets.bp,
    invites.bp,
    invites.links,
)


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(pool_bp)  # seed 003's API, at /pool
    for bp in CORE_BLUEPRINTS:
        app.register_blueprint(bp, url_prefix="/api")
        app.register_blueprint(bp, url_prefix="", name=f"bare_{bp.name}")
