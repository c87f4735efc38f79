"""Plain bulk inserts at driver speed, for the data plane's writer threads.

SQLAlchemy's per-row work (bind processing, JSON serialisation through the
column type) costs more than the insert itself at request-log rates; here
rows are tuples, JSON columns arrive already serialised, and the driver's
own `executemany` does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Table
from sqlalchemy.orm import Session

PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_tuples(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: list[tuple],
    slice_rows: int = 0,
    pause: Callable[[], None] | None = None,
) -> None:
    """INSERT `rows` (values in `columns` order; JSON values as text) into `table`.

    With `slice_rows`, `slice_rows` at a time through one driver cursor, calling `pause`
    between slices (still one transaction: the session's)."""
    if not rows:
        return
    connection = session.connection()
    marker = PLACEHOLDERS[connection.dialect.paramstyle]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    if not slice_rows or len(rows) <= slice_rows:
        connection.exec_driver_sql(sql, rows)
        return
    # The driver's cursor: SQLAlchemy's per-statement work costs ~60 µs a call.
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        for start in range(0, len(rows), slice_rows):
            if start and pause is not None:
                pause()
            cursor.executemany(sql, rows[start : start + slice_rows])
    finally:
        cursor.close()
