"""The migrated schema is the models' schema: Alembic finds nothing to autogenerate.

Runs on the real store of the run (SQLite file or PostgreSQL database).
"""

from __future__ import annotations

from datetime import datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import column, func, insert, select, table

from models import Base, utcnow
from models.store import make_engine
from tests.support import ROOT


def first_rows(now: datetime) -> dict[str, dict]:
    """Rows as the first revision stores them (plain SQL: today's models have more columns)."""
    stamps = {"created_at": now, "updated_at": now}
    return {
        "users": {"id": "user_a", "email": "a@example.test"} | stamps,
        "clients": {"id": "cli_a", "name": "A", "configuration": "{}"} | stamps,
        "memberships": {
            "client_id": "cli_a",
            "user_id": "user_a",
            "roles": '["owner"]',
            "created_at": now,
        },
        "user_tokens": {
            "id": "token_a",
            "user_id": "user_a",
            "token_hash": "0" * 64,
            "hint": "u-aaaa",
            "label": "CI deploys",
            "created_at": now,
        },
    }


def test_migrations_produce_the_models_tables(settings, sessions):
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], differences


def test_upgrading_keeps_every_user_client_membership_and_token(settings):
    """Each migration since the first keeps the rows it found (SQLite's batch mode rebuilds a
    table by dropping it, which must not cascade to the rows referencing it)."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes.update(database_url=settings.database_url, configure_logging=False)
    command.upgrade(config, "0001")
    engine = make_engine(settings.database_url)
    try:
        rows = first_rows(utcnow())
        with engine.begin() as connection:
            for name, values in rows.items():
                connection.execute(insert(table(name, *map(column, values))), [values])
        command.upgrade(config, "head")
        with engine.connect() as connection:
            counts = {
                name: connection.scalar(select(func.count()).select_from(table(name)))
                for name in rows
            }
    finally:
        engine.dispose()
    assert counts == dict.fromkeys(rows, 1)
