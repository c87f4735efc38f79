"""Querying the pool (seed 003's `GET /proxies`): filters, sorts and keyset pagination.

Sorts (`sort`, default `score`) and their default `order`: `score` desc, `uptime` desc,
`last_checked` desc (newest first), `latency` asc (fastest first). Ties are broken by id in
the same direction, and proxies without a value (never checked: no latency, uptime or
check time) come last in both orders. Every sort is answered from an index of
`models/pool.py` (`(status, column, id)` and `(column, id)`).

Pages are keyset pages: the cursor is opaque base64url JSON of the last row's sort value and
id (and the sort it belongs to), so a page never repeats or skips a row that existed when
the first page was read, whatever is inserted meanwhile. `page_of` is the one keyset helper
(the sources list uses it too).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, TypeDecorator, func, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from models.base import utcnow
from models.egress import PoolEgress
from models.json_limits import loads
from models.pool import ANONYMITIES, PROTOCOLS, STATUSES, PoolCheck, PoolProxy
from pool.errors import invalid, not_found
from pool.records import check_record, proxy_record

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_CHARS = 1000
MAX_VERIFIED_MINUTES = 10 * 366 * 24 * 60  # ten years: anything longer filters nothing
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
COUNTRY_PATTERN = re.compile(r"^[A-Za-z]{2}$")

# sort name -> (column, default order is descending)
SORTS: dict[str, tuple[InstrumentedAttribute, bool]] = {
    "score": (PoolProxy.score, True),
    "latency": (PoolProxy.avg_latency_ms, False),
    "uptime": (PoolProxy.uptime_pct, True),
    "last_checked": (PoolProxy.last_checked_at, True),
}
ORDERS = ("asc", "desc")

# An order column of a keyset page: the column and whether it runs descending.
OrderColumn = tuple[InstrumentedAttribute, bool]


@dataclass(frozen=True)
class ProxyQuery:
    """A validated `GET /proxies` query."""

    status: str | None = None
    protocol: str | None = None
    anonymity: str | None = None
    country: str | None = None
    min_score: float | None = None
    max_latency_ms: float | None = None
    min_uptime_pct: float | None = None
    verified_within_minutes: int | None = None
    sort: str = "score"
    descending: bool = True
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def _choice(args: Mapping[str, str], name: str, allowed: Sequence[str]) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise invalid(name, f"must be one of {', '.join(allowed)}", allowed=list(allowed))
    return value


def _number(args: Mapping[str, str], name: str, low: float, high: float | None) -> float | None:
    raw = args.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise invalid(name, f"must be a number {bounds}")
    return value


def _integer(args: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = args.get(name)
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9]{1,10}", raw.strip()) or not low <= int(raw) <= high:
        raise invalid(name, f"must be a whole number between {low} and {high}")
    return int(raw)


def parse_proxy_query(args: Mapping[str, str]) -> ProxyQuery:
    """Validate `GET /proxies` parameters; a bad one is a 422 naming it. Unknown parameters
    are ignored (as seed 003's other endpoints do)."""
    country = args.get("country")
    if country is not None:
        if not COUNTRY_PATTERN.fullmatch(country):
            raise invalid("country", "must be an ISO 3166-1 alpha-2 code such as US")
        country = country.upper()
    sort = _choice(args, "sort", tuple(SORTS)) or "score"
    order = _choice(args, "order", ORDERS)
    limit = _integer(args, "limit", 1, MAX_LIMIT)
    cursor = args.get("cursor") or None
    query = ProxyQuery(
        status=_choice(args, "status", STATUSES),
        protocol=_choice(args, "protocol", PROTOCOLS),
        anonymity=_choice(args, "anonymity", ANONYMITIES),
        country=country,
        min_score=_number(args, "min_score", 0.0, 1.0),
        max_latency_ms=_number(args, "max_latency_ms", 0.0, None),
        min_uptime_pct=_number(args, "min_uptime_pct", 0.0, 100.0),
        verified_within_minutes=_integer(args, "verified_within_minutes", 1, MAX_VERIFIED_MINUTES),
        sort=sort,
        descending=SORTS[sort][1] if order is None else order == "desc",
        limit=DEFAULT_LIMIT if limit is None else limit,
        cursor=cursor,
    )
    if cursor is not None:  # refuse a malformed cursor before any query runs
        decode_cursor(cursor, proxy_order(query))
    return query


POOL_FILTERS = ("protocol", "country", "anonymity", "min_score")  # seed 003's body filters


def parse_pool_filters(body: Mapping[str, Any]) -> ProxyQuery:
    """Seed 003's filters in a JSON body (acquire, test), validated as `GET /proxies`
    validates them: one place for the rules. Active proxies only; other fields are ignored."""
    args: dict[str, str] = {}
    for name in POOL_FILTERS:
        value = body.get(name)
        if value is None:
            continue
        if name == "min_score":
            if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > 1e9:
                raise invalid(name, "must be a number between 0 and 1")
            args[name] = repr(float(value))
        elif not isinstance(value, str):
            raise invalid(name, "must be a string")
        else:
            args[name] = value
    return replace(parse_proxy_query(args), status="active")


def filter_values(query: ProxyQuery) -> dict[str, Any]:
    """The seed's body filters `query` sets, e.g. for a 404's details."""
    values = {name: getattr(query, name) for name in POOL_FILTERS}
    return {name: value for name, value in values.items() if value is not None}


def egress_query(egress: PoolEgress) -> ProxyQuery:
    """The active proxies a target's pool egress may use (its filters are validated already)."""
    return ProxyQuery(
        status="active",
        protocol=egress.protocol,
        anonymity=egress.anonymity,
        country=egress.country.upper() if egress.country else None,
        min_score=egress.min_score,
    )


def free_at(now_s: float) -> ColumnElement[bool]:
    """Nobody leases the proxy at `now_s` (epoch s): no lease, or its time is over, so an
    expired lease frees a proxy without a sweeper."""
    return or_(PoolProxy.leased_until.is_(None), PoolProxy.leased_until <= now_s)


def free_proxies(query: ProxyQuery, now_s: float) -> Select:
    """`SELECT pool_proxies` matching `query` that nobody leases at `now_s` (no order)."""
    return filtered_proxies(query).where(free_at(now_s))


BEST_FIRST = (PoolProxy.score.desc(), PoolProxy.id)


def proxy_order(query: ProxyQuery) -> list[OrderColumn]:
    column, _ = SORTS[query.sort]
    return [(column, query.descending), (PoolProxy.id, query.descending)]


def filtered_proxies(query: ProxyQuery, now: datetime | None = None) -> Select:
    """`SELECT pool_proxies` with the query's filters (no order, no page)."""
    statement = select(PoolProxy)
    equal = {
        PoolProxy.status: query.status,
        PoolProxy.protocol: query.protocol,
        PoolProxy.anonymity: query.anonymity,
        PoolProxy.country: query.country,
    }
    for column, value in equal.items():
        if value is not None:
            statement = statement.where(column == value)
    if query.min_score is not None:
        statement = statement.where(PoolProxy.score >= query.min_score)
    if query.max_latency_ms is not None:
        statement = statement.where(PoolProxy.avg_latency_ms <= query.max_latency_ms)
    if query.min_uptime_pct is not None:
        statement = statement.where(PoolProxy.uptime_pct >= query.min_uptime_pct)
    if query.verified_within_minutes is not None:
        since = (now or utcnow()) - timedelta(minutes=query.verified_within_minutes)
        statement = statement.where(PoolProxy.last_checked_at >= since)
    return statement


def list_proxies(session: Session, query: ProxyQuery, now: datetime | None = None) -> dict:
    """One page of proxies: {"items", "next_cursor", "total_count"}."""
    return page_of(
        session,
        filtered_proxies(query, now),
        proxy_order(query),
        query.limit,
        query.cursor,
        record=proxy_record,
    )


def proxy_detail(session: Session, proxy_id: str, checks: int = 20) -> dict:
    """A proxy and its newest `checks` checks, newest first; 404 when there is none."""
    proxy = session.get(PoolProxy, proxy_id) if UUID_PATTERN.fullmatch(proxy_id) else None
    if proxy is None:
        raise not_found("proxy")
    recent = session.scalars(
        select(PoolCheck)
        .where(PoolCheck.proxy_id == proxy.id)
        .order_by(PoolCheck.created_at.desc(), PoolCheck.id.desc())
        .limit(checks)
    ).all()
    return {"proxy": proxy_record(proxy), "recent_checks": [check_record(c) for c in recent]}


# --- keyset pagination -------------------------------------------------------------------


def sort_signature(order_columns: Sequence[OrderColumn]) -> str:
    """What a cursor is bound to: the order it was made for (`score:desc,id:desc`)."""
    return ",".join(f"{column.key}:{'desc' if desc else 'asc'}" for column, desc in order_columns)


def _encode_value(value: Any) -> Any:
    return {"t": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.fromisoformat(value["t"])
    return value


def encode_cursor(signature: str, values: Sequence[Any]) -> str:
    """The opaque cursor after a row whose order columns hold `values`."""
    body = json.dumps({"s": signature, "v": [_encode_value(v) for v in values]}, separators=",:")
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order_columns: Sequence[OrderColumn]) -> list[Any]:
    """The values a cursor holds; 422 naming `cursor` unless it is one made for this order,
    with a value of each column's type (only the first may be None)."""
    bad = invalid("cursor", "is not a cursor of this list and order; start again without it")
    if len(cursor) > MAX_CURSOR_CHARS or not re.fullmatch(r"[A-Za-z0-9_-]+", cursor):
        raise bad
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        body = loads(base64.urlsafe_b64decode(padded).decode())
        values = [_decode_value(v) for v in body["v"]]
        ok = body["s"] == sort_signature(order_columns) and len(values) == len(order_columns)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, RecursionError):
        raise bad from None
    if not ok:
        raise bad
    for index, ((column, _), value) in enumerate(zip(order_columns, values, strict=True)):
        nullable = index == 0 and getattr(column.expression, "nullable", True)
        if not _fits(column, value, nullable):
            raise bad
    return values


def _fits(column: InstrumentedAttribute, value: Any, nullable: bool) -> bool:
    """Whether `value` can stand for `column` in a comparison (PostgreSQL refuses a text
    compared with a number, and NUL in text)."""
    if value is None:
        return nullable
    kind = column.type
    expected = (kind.impl if isinstance(kind, TypeDecorator) else kind).python_type
    if expected is float:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if expected is str:
        return isinstance(value, str) and "\x00" not in value and len(value) <= 255
    if expected is datetime:
        return isinstance(value, datetime) and value.tzinfo is not None
    return isinstance(value, expected) and not isinstance(value, bool)


def _after(order_columns: Sequence[OrderColumn], values: Sequence[Any]):
    columns = [column for column, _ in order_columns]
    descending = order_columns[0][1]
    if len(columns) == 1:
        left, right = columns[0], values[0]
    else:
        left, right = tuple_(*columns), tuple_(*values)
    return left < right if descending else left > right


def _ordered(statement: Select, order_columns: Sequence[OrderColumn]) -> Select:
    return statement.order_by(*(c.desc() if desc else c.asc() for c, desc in order_columns))


def page_of(
    session: Session,
    statement: Select,
    order_columns: Sequence[OrderColumn],
    limit: int,
    cursor: str | None,
    record: Callable[[Any], Any] = lambda row: row,
) -> dict:
    """One keyset page of `statement`'s rows: {"items", "next_cursor", "total_count"}.

    `order_columns` are `(column, descending)` pairs, all in one direction, the last one
    unique and never NULL (the id). Only the first may hold NULLs: those rows come after
    every other in both directions (two index-friendly queries: the rows with a value,
    then the rows without one), so the order is the same on SQLite and PostgreSQL.
    `record` turns each row into what `items` holds.
    """
    if len({desc for _, desc in order_columns}) != 1:
        raise ValueError("page_of: every order column must run in one direction")
    signature = sort_signature(order_columns)
    values = decode_cursor(cursor, order_columns) if cursor else None
    first = order_columns[0][0]
    nullable = getattr(first.expression, "nullable", True)
    rest = order_columns[1:]
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))

    rows: list = []
    if values is None or values[0] is not None:  # the rows with a value first
        with_value = statement.where(first.is_not(None)) if nullable else statement
        if values is not None:
            with_value = with_value.where(_after(order_columns, values))
        rows = list(session.scalars(_ordered(with_value, order_columns).limit(limit + 1)))
    if nullable and len(rows) <= limit:  # then the rows without one, in the tie-break's order
        without = statement.where(first.is_(None))
        if values is not None and values[0] is None:
            without = without.where(_after(rest, values[1:]))
        more = _ordered(without, rest).limit(limit + 1 - len(rows))
        rows.extend(session.scalars(more))
    page, has_more = rows[:limit], len(rows) > limit
    next_cursor = None
    if has_more:
        last = page[-1]
        next_cursor = encode_cursor(signature, [getattr(last, c.key) for c, _ in order_columns])
    return {
        "items": [record(row) for row in page],
        "next_cursor": next_cursor,
        "total_count": total,
    }
