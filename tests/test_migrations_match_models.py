"""The migrated schema is the models' schema: Alembic finds nothing to autogenerate.

Runs on the real store of the run (SQLite file or PostgreSQL database).
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from models import Base
from models.store import make_engine


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
