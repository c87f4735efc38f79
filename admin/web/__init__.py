"""The admin for people: server-rendered pages (Jinja, Flask-WTF) over the Core API.

Every page is a thin client of the Core API, called in-process as the
signed-in session's user (`core_api.call`): validation, roles and secret
handling stay in one place, the API's. Sessions are kept in the store; the
cookie holds only a session secret (`session.py`). Forms carry CSRF tokens;
the Core API itself, authenticated by a header token, is exempt.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Flask, redirect, url_for
from flask_wtf import CSRFProtect

from admin.web import words

bp = Blueprint("web", __name__, url_prefix="/ui")
csrf = CSRFProtect()


def init_web(app: Flask, api_blueprints) -> None:
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # tied to the cookie, cleared at every sign-in and sign-out
    )
    csrf.init_app(app)
    for api_bp in api_blueprints:
        csrf.exempt(api_bp)
    from admin.web import (  # noqa: F401  (the modules register their routes on `bp`)
        views_account,
        views_async,
        views_budget,
        views_clients,
        views_config,
        views_credentials,
        views_filters,
        views_invites,
        views_meters,
        views_notifications,
        views_notifiers,
        views_oauth,
        views_pool,
        views_pool_notifiers,
        views_rules,
        views_traffic,
    )

    app.register_blueprint(bp)
    app.add_url_rule("/", "root", lambda: redirect(url_for("web.home")))
    app.add_template_filter(timestamp)
    app.add_template_filter(words.plural)
    app.add_template_filter(words.scope_words)
    app.add_template_filter(words.setting_lines)
    app.add_template_filter(words.when)


def timestamp(epoch_ms: int | None) -> str:
    """Epoch milliseconds as `2026-11-23 19:30:05` (UTC)."""
    if epoch_ms is None:
        return ""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
