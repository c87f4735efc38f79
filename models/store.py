"""Engines and sessions for code outside Flask (the data plane, CLI commands, jobs)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL for concurrent readers and one writer, enforced foreign keys, a patient lock wait."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def engine_options(database_url: str) -> dict:
    """Options for `create_engine` suited to the backend of `database_url`."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"check_same_thread": False, "timeout": 10}}
    return {"pool_pre_ping": True}


def prepare_engine(engine: Engine) -> Engine:
    """Install per-connection settings on an engine created elsewhere (e.g. Flask-SQLAlchemy)."""
    if engine.dialect.name == "sqlite" and not event.contains(engine, "connect", sqlite_pragmas):
        event.listen(engine, "connect", sqlite_pragmas)
    return engine


def make_engine(database_url: str) -> Engine:
    """A configured engine for `database_url`."""
    return prepare_engine(create_engine(database_url, **engine_options(database_url)))


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Plain sessions on `engine`, objects usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)
