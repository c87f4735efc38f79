"""The data plane's batched writer: a row the store refuses costs that row, not its batch."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from addons.batch_writer import BatchWriter
from models.store import make_engine
from tests.stores import scratch_database_url

ROWS = MetaData()
NOTES = Table("notes", ROWS, Column("id", Integer, primary_key=True), Column("text", String))


def test_a_refused_row_loses_only_itself(tmp_path):
    engine = make_engine(scratch_database_url(tmp_path))
    ROWS.create_all(engine)

    def write(session, items):
        session.execute(insert(NOTES), items)

    writer = BatchWriter(engine, write, "test-writer")
    writer.start()
    for item in ({"id": 1, "text": "a"}, {"id": 2, "text": "b"}, {"id": 1, "text": "again"}):
        writer.submit(item)
    writer.submit({"id": 3, "text": "c"})
    writer.stop()  # writes what is queued before it returns

    with engine.connect() as connection:
        stored = connection.execute(select(NOTES.c.id, NOTES.c.text).order_by(NOTES.c.id)).all()
    assert [tuple(row) for row in stored] == [(1, "a"), (2, "b"), (3, "c")]


def test_a_write_failing_in_any_way_leaves_the_writer_running(tmp_path):
    """Not only the store's own errors: any exception of a write must not end the thread."""
    engine = make_engine(scratch_database_url(tmp_path))
    ROWS.create_all(engine)

    def write(session, items):
        for item in items:
            if item["text"] is None:
                raise AttributeError("a bug in a row's conversion")
        session.execute(insert(NOTES), items)

    writer = BatchWriter(engine, write, "test-writer")
    writer.start()
    writer.submit({"id": 1, "text": None})
    writer.submit({"id": 2, "text": "after the failure"})
    writer.stop()

    with engine.connect() as connection:
        stored = connection.execute(select(NOTES.c.id, NOTES.c.text)).all()
    assert [tuple(row) for row in stored] == [(2, "after the failure")]
