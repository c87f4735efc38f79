"""SQL aggregates whose Python type is the same on every store."""

from __future__ import annotations

from sqlalchemy import BigInteger, ColumnElement, cast, func


def integer_sum(column) -> ColumnElement[int]:
    """SUM of an integer column as an integer (None over no rows).

    PostgreSQL's SUM of a bigint is `numeric`, which psycopg returns as `Decimal`:
    it would reach JSON as a string and refuse arithmetic with floats.
    """
    return cast(func.sum(column), BigInteger)
