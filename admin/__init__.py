"""The control plane: a Flask app serving the Core API, built by `create_app`."""

from __future__ import annotations

from flask import Flask

from admin.access_log import init_access_log
from admin.api import CORE_BLUEPRINTS, register_blueprints
from admin.errors import register_error_handlers
from admin.extensions import db
from admin.json_provider import OrjsonProvider
from admin.metrics import init_metrics
from admin.pool_api import bp as pool_bp
from admin.web import init_web
from models.crypto import KeyRing, load_key_ring
from models.settings import Settings
from models.store import engine_options, prepare_engine


def create_app(settings: Settings | None = None, key_ring: KeyRing | None = None) -> Flask:
    """Build the admin app for `settings` (default: from the environment)."""
    settings = settings or Settings.from_env()
    key_generated = False
    if key_ring is None:
        key_ring, key_generated = load_key_ring(settings.master_keys, settings.master_key_file)

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=settings.max_api_body_bytes,
        PORTCULLIS_SETTINGS=settings,
        PORTCULLIS_KEY_RING=key_ring,
        PORTCULLIS_KEY_GENERATED=key_generated,
    )
    app.json = OrjsonProvider(app)  # keys in the order the schemas give them
    db.init_app(app)
    with app.app_context():
        prepare_engine(db.engine)
    app.config.update(
        SECRET_KEY=settings.web_secret(),
        SESSION_COOKIE_SECURE=settings.secure_cookies,
    )
    register_error_handlers(app)
    register_blueprints(app)
    init_metrics(app)  # GET /metrics (Prometheus) and the admin's request counts
    init_web(app, (*CORE_BLUEPRINTS, pool_bp))  # key-authenticated APIs: no CSRF token
    init_access_log(app)
    return app
