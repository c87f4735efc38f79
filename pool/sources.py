"""Sources of the pool: validation, create/update/delete, listing, the cron schedule.

Fields (seed 003): `url` (http/https with a host; user-info allowed, shown masked),
`parser_name` (a registered parser; omitted on create → the URL is fetched and the first
parser whose `supports()` accepts it is chosen, 422 `NO_PARSER_MATCHED` when none does),
`cron_schedule` (5-field crontab in UTC, weekdays 0/7 = Sunday; default `*/30 * * * *`;
when both a day of month and a weekday are given, both must match, unlike classic cron),
`default_protocol` (http, https, socks4, socks5; default http: the protocol of entries
that name none), `is_active` (default true). `next_scrape_at` is recomputed from the
schedule on every change (None while inactive); the scheduler scrapes a source once it
has passed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.pool import PROTOCOLS, PoolProxy, PoolSource
from models.settings import Settings
from pool.errors import PoolError, invalid, not_found
from pool.fetch import fetch_source
from pool.parsers import PARSERS, detect
from pool.query import page_of
from pool.records import source_record
from pool.urls import http_url

DEFAULT_CRON = "*/30 * * * *"
MAX_CRON_CHARS = 120
FIELDS = ("url", "parser_name", "cron_schedule", "default_protocol", "is_active")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron's numbers: 0 (or 7) = sun
FULL_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


def _weekday(text: str) -> int:
    text = text.strip().lower()
    if text.isdigit() and int(text) <= 7:
        return int(text) % 7
    if text in WEEKDAYS or text in FULL_WEEKDAYS:
        return WEEKDAYS.index(text[:3])
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun-sat)")


def standard_weekdays(field: str) -> str:
    """A crontab day-of-week field (0 and 7 = Sunday) as day names for APScheduler 3, whose
    numbers start at Monday (its issue 286): `1-5` → `mon,tue,wed,thu,fri`."""
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"{item!r}: the step must be a positive number")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _weekday(start), _weekday(end)
            last = 7 if last == 0 and first > 0 else last  # 5-7, fri-sun: Sunday ends it
        else:
            first = last = _weekday(span)
            if step is not None:
                last = 6
        if first > last:
            raise ValueError(f"{item!r}: the range runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(WEEKDAYS[day] for day in sorted(days))


def cron_trigger(expression: str) -> CronTrigger:
    """The trigger of a 5-field crontab expression (UTC, weekdays as crontab numbers them);
    422 naming `cron_schedule` if bad."""
    if not isinstance(expression, str) or not expression.strip():
        raise invalid("cron_schedule", "must be a 5-field cron expression such as '*/30 * * * *'")
    fields = expression.split()
    if len(expression) > MAX_CRON_CHARS or len(fields) != 5:
        raise invalid("cron_schedule", "must have exactly 5 fields: minute hour day month weekday")
    try:
        fields[4] = standard_weekdays(fields[4])
        return CronTrigger.from_crontab(" ".join(fields), timezone=UTC)
    except (ValueError, TypeError, KeyError) as exc:
        raise invalid("cron_schedule", f"is not a valid cron expression ({exc})") from None


def check_cron(value: object) -> str:
    """A valid cron expression that fires at some time; 422 naming `cron_schedule`."""
    trigger = cron_trigger(value)
    if trigger.get_next_fire_time(None, utcnow()) is None:
        raise invalid("cron_schedule", "never fires (no such date)")
    return value.strip()


def next_scrape(expression: str, after: datetime | None = None) -> datetime | None:
    """When a source on `expression` is next due after `after` (default now)."""
    now = after or utcnow()
    fire = cron_trigger(expression).get_next_fire_time(None, now)
    return fire.astimezone(UTC) if fire is not None else None


def check_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid("url", "is required: the http(s) URL of a proxy list")
    url = value.strip()
    http_url(url)
    return url


def check_parser(value: object) -> str:
    if not isinstance(value, str) or value not in PARSERS:
        raise invalid("parser_name", f"must be one of {', '.join(PARSERS)}", allowed=list(PARSERS))
    return value


def check_protocol(value: object) -> str:
    if value not in PROTOCOLS:
        raise invalid("default_protocol", f"must be one of {', '.join(PROTOCOLS)}")
    return value


def check_active(value: object) -> bool:
    if not isinstance(value, bool):
        raise invalid("is_active", "must be true or false")
    return value


def _known_fields(data: Mapping) -> None:
    for name in data:
        if name not in FIELDS:
            raise invalid(str(name), f"is not a source field (fields: {', '.join(FIELDS)})")


def detect_parser(settings: Settings, url: str) -> str:
    """Fetch `url` and name the first parser that supports it; 422 NO_PARSER_MATCHED."""
    fetched = fetch_source(settings, url)
    return detected_parser(fetched.content, fetched.content_type)


def detected_parser(content: str, content_type: str) -> str:
    """The name of the first parser supporting `content`; 422 NO_PARSER_MATCHED."""
    parser = detect(content, content_type)
    if parser is None:
        raise PoolError(
            422,
            "NO_PARSER_MATCHED",
            f"no parser ({', '.join(PARSERS)}) recognises a proxy list in the source's "
            f"answer ({content_type or 'no content type'}); name parser_name",
            {"field": "parser_name"},
        )
    return parser.name


def _schedule(source: PoolSource) -> None:
    source.next_scrape_at = next_scrape(source.cron_schedule) if source.is_active else None


def create_source(session: Session, settings: Settings, data: Mapping) -> PoolSource:
    """A new source from a request body (not committed: the caller commits)."""
    _known_fields(data)
    url = check_url(data.get("url"))
    cron = check_cron(data.get("cron_schedule", DEFAULT_CRON))
    protocol = check_protocol(data.get("default_protocol", "http"))
    active = check_active(data.get("is_active", True))
    parser = data.get("parser_name")
    parser = detect_parser(settings, url) if parser is None else check_parser(parser)
    source = PoolSource(
        url=url,
        parser_name=parser,
        cron_schedule=cron,
        default_protocol=protocol,
        is_active=active,
    )
    _schedule(source)
    session.add(source)
    session.flush()
    return source


def update_source(
    session: Session, settings: Settings, source: PoolSource, data: Mapping
) -> PoolSource:
    """Change the given fields (all validated before any is set). `parser_name: null`
    detects the parser again from the (new) URL."""
    _known_fields(data)
    changes: dict = {}
    if "url" in data:
        changes["url"] = check_url(data["url"])
    if "cron_schedule" in data:
        changes["cron_schedule"] = check_cron(data["cron_schedule"])
    if "default_protocol" in data:
        changes["default_protocol"] = check_protocol(data["default_protocol"])
    if "is_active" in data:
        changes["is_active"] = check_active(data["is_active"])
    if "parser_name" in data:
        parser = data["parser_name"]
        url = changes.get("url", source.url)
        changes["parser_name"] = (
            detect_parser(settings, url) if parser is None else check_parser(parser)
        )
    for name, value in changes.items():
        setattr(source, name, value)
    _schedule(source)
    session.flush()
    return source


def delete_source(session: Session, source: PoolSource) -> None:
    """Delete a source; its proxies stay (their source_id becomes NULL). 409
    SCRAPE_IN_PROGRESS while it is being scraped (the scrape would store rows for it)."""
    if (source.scrape_claimed_until or 0) > time.time():
        raise PoolError(
            409,
            "SCRAPE_IN_PROGRESS",
            "this source is being scraped now; delete it when that scrape has finished",
            {"source_id": source.id},
        )
    session.execute(
        PoolProxy.__table__.update().where(PoolProxy.source_id == source.id).values(source_id=None)
    )
    session.delete(source)
    session.flush()


def get_source(session: Session, source_id: str) -> PoolSource:
    source = session.get(PoolSource, source_id) if isinstance(source_id, str) else None
    if source is None:
        raise not_found("source")
    return source


def parse_list_args(args: Mapping[str, str]) -> tuple[bool | None, int, str | None]:
    """(is_active, limit, cursor) of a `GET /sources` query; 422 naming the bad parameter."""
    active = None
    if "is_active" in args:
        text = args["is_active"].strip().lower()
        if text not in ("true", "false", "1", "0"):
            raise invalid("is_active", "must be true or false")
        active = text in ("true", "1")
    limit = DEFAULT_LIMIT
    if "limit" in args:
        text = args["limit"].strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise invalid("limit", f"must be an integer from 1 to {MAX_LIMIT}")
        limit = int(text)
    return active, limit, args.get("cursor") or None


def list_sources(session: Session, is_active: bool | None, limit: int, cursor: str | None) -> dict:
    """Seed 003's page of sources, newest first."""
    statement = select(PoolSource)
    if is_active is not None:
        statement = statement.where(PoolSource.is_active == is_active)
    order = [(PoolSource.created_at, True), (PoolSource.id, True)]
    return page_of(session, statement, order, limit, cursor, source_record)
