"""Plain bulk inserts at driver speed, for the data plane's writer threads.

SQLAlchemy's per-row work (bind processing, JSON serialisation through the
column type) costs more than the insert itself at request-log rates; here
rows are tuples, JSON columns arrive already serialised, and the driver's
own `executemany` does the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.orm import Session

PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_tuples(
    session: Session, table: Table, columns: Sequence[str], rows: list[tuple]
) -> None:
    """INSERT `rows` (values in `columns` order; JSON values as text) into `table`."""
    if not rows:
        return
    connection = session.connection()
    marker = PLACEHOLDERS[connection.dialect.paramstyle]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    connection.exec_driver_sql(sql, rows)
