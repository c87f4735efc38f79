"""Additive upserts: insert a row, or add its numbers to the row already there.

`INSERT ... ON CONFLICT (...) DO UPDATE SET n = n + excluded.n` is atomic on
SQLite and PostgreSQL, so writers in several processes never lose each
other's counts and need no read-modify-write.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def add_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict],
    add: Sequence[str],
    replace: Sequence[str] = (),
) -> None:
    """Upsert `rows` on `table`'s primary key: `add` columns are summed, `replace` ones set."""
    if not rows:
        return
    statement = upsert(session.get_bind().dialect.name, table, tuple(add), tuple(replace))
    session.execute(statement, list(rows))


@lru_cache(maxsize=64)
def upsert(dialect: str, table: Table, add: tuple[str, ...], replace: tuple[str, ...]):
    """The upsert statement of `add_rows`, built once: statements are immutable, and building
    one (`excluded`'s column collection) cost more than executing it for a writer's batch."""
    try:
        insert = INSERTS[dialect]
    except KeyError:
        raise NotImplementedError(f"additive upserts are not implemented for {dialect}") from None
    statement = insert(table)
    updates = {name: table.c[name] + statement.excluded[name] for name in add}
    updates |= {name: statement.excluded[name] for name in replace}
    return statement.on_conflict_do_update(
        index_elements=[column.name for column in table.primary_key.columns], set_=updates
    )
