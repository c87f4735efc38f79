"""Scraping a source: claim its lease, fetch, parse, store in bulk, record the result.

One scrape of a source runs at a time across every admin process: the lease is a
compare-and-set on `pool_sources.scrape_claimed_until` (epoch s) and `scrape_claimed_by`;
a second caller gets 409 `SCRAPE_IN_PROGRESS`. A lease outlives a crashed scraper by at most
the fetch timeout plus `LEASE_MARGIN_S`.

Storing is bulk, in short transactions of `BATCH` candidates: existing rows are found by
(protocol, host, port) (see `_existing`), new rows are inserted `ON CONFLICT DO NOTHING` in
chunks (so a proxy another source's scrape inserted meanwhile counts as updated, not new),
seen rows get `last_seen_at` in one UPDATE per chunk. New rows are `unchecked` and due a
check at once (`next_check_at` 0). Passwords from a list are sealed (pool/passwords.py),
never stored in clear.

Errors (PoolError): those of pool/fetch.py, plus 404 NOT_FOUND, 409 SCRAPE_IN_PROGRESS,
422 `SOURCE_UNPARSEABLE` (the answer is not empty but the parser finds no proxy in it),
422 `SOURCE_TOO_MANY` (more than `MAX_CANDIDATES` proxies in one list).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

from sqlalchemy import bindparam, func, or_, select, tuple_
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models.base import utcnow
from models.crypto import KeyRing
from models.pool import PoolProxy, PoolSource
from models.settings import Settings
from models.upsert import INSERTS
from pool.errors import PoolError, not_found
from pool.fetch import fetch_source
from pool.parsers import PARSERS, Candidate
from pool.passwords import seal_password
from pool.sources import check_parser, check_url, detected_parser, next_scrape

log = logging.getLogger("portcullis.pool.scrape")

LEASE_MARGIN_S = 300
MAX_CANDIDATES = 100_000
CHUNK = 500  # rows (or keys) per statement
ID_CHUNK = 5000  # ids per `id IN (...)` statement: few statements, under every bind limit
SCAN_FACTOR = 10  # a list at least a tenth of the pool's size is matched in one pass
SAMPLE = 10
BATCH = 5000  # candidates per transaction
BATCH_ATTEMPTS = 3
TABLE = PoolProxy.__table__
Sessions = Callable[[], Session]


def claimant_id() -> str:
    """This process's name for the leases it takes (host, pid, a random part)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    """`items` in slices of `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _claim(
    sessions: Sessions, source_id: str, claimant: str, lease_s: float, due_only: bool
) -> dict:
    """Take the source's scrape lease (only while it is due, with `due_only`); its fields
    as they are now. 404 / 409."""
    now = time.time()
    conditions = [
        PoolSource.id == source_id,
        or_(PoolSource.scrape_claimed_until.is_(None), PoolSource.scrape_claimed_until < now),
    ]
    if due_only:  # the scheduler: not if another process scraped it since it looked
        conditions.append(PoolSource.next_scrape_at <= utcnow())
    with sessions() as session:
        taken = session.execute(
            PoolSource.__table__.update()
            .where(*conditions)
            .values(scrape_claimed_until=now + lease_s, scrape_claimed_by=claimant)
        ).rowcount
        session.commit()
        source = session.get(PoolSource, source_id)
        if source is None:
            raise not_found("source")
        if taken != 1:
            raise PoolError(
                409,
                "SCRAPE_IN_PROGRESS",
                "this source is being scraped now (by this or another admin process); "
                "try again when that scrape has finished",
                {"source_id": source_id},
            )
        return {
            "url": source.url,
            "parser_name": source.parser_name,
            "default_protocol": source.default_protocol,
            "cron_schedule": source.cron_schedule,
            "is_active": source.is_active,
        }


def _release(sessions: Sessions, source_id: str, claimant: str, fields: dict, values: dict) -> None:
    """Record the outcome, schedule the next scrape, give the lease back (if still ours)."""
    next_at = next_scrape(fields["cron_schedule"]) if fields["is_active"] else None
    with sessions() as session:
        session.execute(
            PoolSource.__table__.update()
            .where(PoolSource.id == source_id, PoolSource.scrape_claimed_by == claimant)
            .values(
                scrape_claimed_until=None,
                scrape_claimed_by=None,
                next_scrape_at=next_at,
                **values,
            )
        )
        session.commit()


def candidates_of(content: str, parser_name: str, default_protocol: str) -> list[Candidate]:
    """The list's proxies, the default protocol applied, each (protocol, host, port) once.
    422 SOURCE_UNPARSEABLE / SOURCE_TOO_MANY."""
    found: dict[tuple, Candidate] = {}
    for item in PARSERS[parser_name].parse(content):
        item = item._replace(protocol=item.protocol or default_protocol)
        found.setdefault((item.protocol, item.host, item.port), item)
        if len(found) > MAX_CANDIDATES:
            raise PoolError(
                422,
                "SOURCE_TOO_MANY",
                f"the source lists more than {MAX_CANDIDATES} proxies; split it",
            )
    if not found and content.strip():
        raise PoolError(
            422,
            "SOURCE_UNPARSEABLE",
            f"the {parser_name} parser found no proxy in the source's answer",
            {"field": "parser_name"},
        )
    return list(found.values())


def _existing(session: Session, keys: list[tuple]) -> dict[tuple, str]:
    """Ids of the rows already there for `keys` (protocol, host, port).

    A long list against a pool not much larger is matched in one pass over the pool's keys
    (predictable on both engines, whatever the planner's statistics say just after a big
    insert); a short one by chunks of exact `(protocol, host, port) IN (...)` lookups, each
    an index probe on the unique constraint."""
    wanted = set(keys)
    if not wanted:
        return {}
    columns = (TABLE.c.protocol, TABLE.c.host, TABLE.c.port, TABLE.c.id)
    pool_size = session.scalar(select(func.count()).select_from(TABLE)) or 0
    if pool_size <= SCAN_FACTOR * len(wanted):
        rows = session.execute(select(*columns).execution_options(yield_per=10_000))
        return {(p, h, n): i for p, h, n, i in rows if (p, h, n) in wanted}
    ids: dict[tuple, str] = {}
    for chunk in _chunks(sorted(wanted)):
        query = select(*columns).where(tuple_(*columns[:3]).in_(chunk))
        ids.update({(p, h, n): i for p, h, n, i in session.execute(query)})
    return ids


def _sealed(key_ring: KeyRing, proxy_id: str, item: Candidate) -> dict:
    if item.password is None:
        return {"password_key_id": None, "password_ciphertext": None}
    sealed = seal_password(key_ring, proxy_id, item.password)
    return {"password_key_id": sealed.key_id, "password_ciphertext": sealed.ciphertext}


def _new_row(key_ring: KeyRing, item: Candidate, source_id: str, now: datetime) -> dict:
    proxy_id = str(uuid.uuid4())
    return {
        "id": proxy_id,
        "host": item.host,
        "port": item.port,
        "protocol": item.protocol,
        "username": item.username,
        **_sealed(key_ring, proxy_id, item),
        "status": "unchecked",
        "score": 0.0,
        "checks_total": 0,
        "checks_passed": 0,
        "consecutive_failures": 0,
        "first_seen_at": now,
        "last_seen_at": now,
        "next_check_at": 0.0,
        "source_id": source_id,
        "tags": item.tags,
    }


def _insert_new(session: Session, rows: list[dict]) -> set[str]:
    """Insert rows not there yet; the ids really inserted (a row another scrape inserted
    meanwhile is skipped). No RETURNING: with ON CONFLICT it costs a statement per row."""
    insert = INSERTS[session.get_bind().dialect.name]
    statement = insert(TABLE).on_conflict_do_nothing(index_elements=["protocol", "host", "port"])
    inserted: set[str] = set()
    for chunk in _chunks(rows):
        session.execute(statement, chunk)
    for ids in _chunks([row["id"] for row in rows], ID_CHUNK):
        inserted.update(session.scalars(select(TABLE.c.id).where(TABLE.c.id.in_(ids))))
    return inserted


def _touch(session: Session, ids: list[str], source_id: str | None, now: datetime) -> None:
    """`last_seen_at` (and a missing source) for rows seen again; rows locked in id order
    first (PostgreSQL; SQLite has one writer anyway)."""
    for chunk in _chunks(ids, ID_CHUNK):
        locking = select(TABLE.c.id).where(TABLE.c.id.in_(chunk)).order_by(TABLE.c.id)
        session.execute(locking.with_for_update())
        session.execute(TABLE.update().where(TABLE.c.id.in_(chunk)).values(last_seen_at=now))
        if source_id is None:
            continue
        session.execute(
            TABLE.update()
            .where(TABLE.c.id.in_(chunk), TABLE.c.source_id.is_(None))
            .values(source_id=source_id)
        )


def _set_credentials(session: Session, key_ring: KeyRing, found: list[tuple]) -> None:
    """New credentials a list gives for proxies already in the pool."""
    rows = [
        {"b_id": proxy_id, "username": item.username, **_sealed(key_ring, proxy_id, item)}
        for proxy_id, item in found
    ]
    for chunk in _chunks(rows):
        session.execute(TABLE.update().where(TABLE.c.id == bindparam("b_id")), chunk)


def _store_batch(
    session: Session,
    key_ring: KeyRing,
    source_id: str | None,
    batch: dict[tuple, Candidate],
    existing: dict[tuple, str],
    now: datetime,
) -> tuple[int, int]:
    """One batch's upsert, in the caller's transaction: (new, updated)."""
    rows = [_new_row(key_ring, c, source_id, now) for k, c in batch.items() if k not in existing]
    inserted = _insert_new(session, rows)
    raced = [(r["protocol"], r["host"], r["port"]) for r in rows if r["id"] not in inserted]
    found = {k: v for k, v in existing.items() if k in batch}
    found.update(_existing(session, raced))  # inserted by someone else meanwhile
    _touch(session, sorted(found.values()), source_id, now)
    with_credentials = sorted(
        (found[key], item) for key, item in batch.items() if key in found and item.username
    )
    _set_credentials(session, key_ring, with_credentials)
    return len(inserted), len(found)


def store_candidates(
    sessions: Sessions,
    key_ring: KeyRing,
    source_id: str | None,
    candidates: list[Candidate],
    now: datetime | None = None,
) -> tuple[int, int]:
    """Upsert `candidates`: (new, updated). One short transaction per `BATCH` candidates, in
    (protocol, host, port) order, so a big list never holds SQLite's write lock for long and
    concurrent scrapes take row locks in one order; a batch that meets a deadlock or a busy
    store is tried again."""
    now = now or utcnow()
    by_key = {(c.protocol, c.host, c.port): c for c in candidates}
    with sessions() as session:
        existing = _existing(session, list(by_key))
    new = updated = 0
    for keys in _chunks(sorted(by_key), BATCH):
        batch = {key: by_key[key] for key in keys}
        for attempt in range(BATCH_ATTEMPTS):
            try:
                with sessions() as session:
                    counts = _store_batch(session, key_ring, source_id, batch, existing, now)
                    session.commit()
                break
            except OperationalError:
                if attempt == BATCH_ATTEMPTS - 1:
                    raise
                log.warning("storing a batch of a scrape met a busy store; trying again")
        new, updated = new + counts[0], updated + counts[1]
    return new, updated


def scrape_source(
    sessions: Sessions,
    settings: Settings,
    key_ring: KeyRing,
    source_id: str,
    claimant: str,
    *,
    due_only: bool = False,
) -> dict:
    """Scrape one source now: seed 003's result (source_id, proxies_discovered,
    proxies_new, proxies_updated, duration_ms). Raises PoolError (module doc); with
    `due_only` (the scheduler) a source no longer due is a 409 SCRAPE_IN_PROGRESS too."""
    started = time.monotonic()
    lease_s = settings.pool_source_timeout_ms / 1000 + LEASE_MARGIN_S
    fields = _claim(sessions, source_id, claimant, lease_s, due_only)
    try:
        fetched = fetch_source(settings, fields["url"])
        candidates = candidates_of(
            fetched.content, fields["parser_name"], fields["default_protocol"]
        )
        new, updated = store_candidates(sessions, key_ring, source_id, candidates)
    except Exception as exc:
        message = exc.message if isinstance(exc, PoolError) else "internal error (see the log)"
        _release(sessions, source_id, claimant, fields, {"last_error": message})
        raise
    result = {
        "source_id": source_id,
        "proxies_discovered": len(candidates),
        "proxies_new": new,
        "proxies_updated": updated,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }
    values = {"last_scraped_at": utcnow(), "last_result": result, "last_error": None}
    _release(sessions, source_id, claimant, fields, values)
    return result


def preview(
    settings: Settings, url: str, parser_name: str | None, default_protocol: str = "http"
) -> dict:
    """What a source would give, without storing anything (the web's add form):
    {"parser_name", "proxies_found", "sample": [up to 10 {"ip", "port", "protocol"}]}."""
    url = check_url(url)
    fetched = fetch_source(settings, url)
    if parser_name is None:
        parser_name = detected_parser(fetched.content, fetched.content_type)
    check_parser(parser_name)
    found = candidates_of(fetched.content, parser_name, default_protocol)
    sample = [{"ip": c.host, "port": c.port, "protocol": c.protocol} for c in found[:SAMPLE]]
    return {"parser_name": parser_name, "proxies_found": len(found), "sample": sample}
