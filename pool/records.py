"""The pool's rows as seed 003's JSON records (the API, the web and the CLI show the same).

Secrets never leave through a record: a proxy's password (nor its username) is never
shown, only `"has_credentials": true`; a source URL's password is shown as `***`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from models.base import isoformat_z
from models.pool import PoolCheck, PoolProxy, PoolSource
from models.redaction import SENSITIVE_NAME

MASK = "***"


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def proxy_record(p: PoolProxy) -> dict:
    """One proxy in seed 003's shape (keys in the seed's order)."""
    record = {
        "id": p.id,
        "ip": p.host,
        "port": p.port,
        "protocol": p.protocol,
        "status": p.status,
        "anonymity": p.anonymity,
        "exit_ip": p.exit_ip,
        "country": p.country,
        "score": _rounded(p.score, 4),
        "avg_latency_ms": _rounded(p.avg_latency_ms, 1),
        "uptime_pct": _rounded(p.uptime_pct, 1),
        "last_checked_at": isoformat_z(p.last_checked_at),
        "first_seen_at": isoformat_z(p.first_seen_at),
        "tags": p.tags or {},
    }
    if p.username is not None or p.password_ciphertext is not None:
        record["has_credentials"] = True
    return record


def masked_url(url: str) -> str:
    """`url` with its secrets replaced by `***`: the user-info's (`user:***@host` when it has a
    password, `***@host` when it has only a user name, often a token itself) and the values of
    query parameters named like secrets (`?api_key=***`)."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:  # not a URL urllib can split: mask whatever stands before an "@"
        return re.sub(r"^([^/]*//)?[^/]*@", lambda m: f"{m.group(1) or ''}{MASK}@", url)
    netloc = parts.netloc
    if username is not None or password is not None:
        host = netloc.rsplit("@", 1)[1]
        userinfo = f"{netloc.rsplit('@', 1)[0].split(':', 1)[0]}:{MASK}" if password else MASK
        netloc = f"{userinfo}@{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=_masked_query(parts.query)))


def _masked_query(query: str) -> str:
    return (
        "&".join(
            f"{name}={MASK}" if sep and SENSITIVE_NAME.search(name) else f"{name}{sep}{value}"
            for name, sep, value in (pair.partition("=") for pair in query.split("&"))
        )
        if query
        else query
    )


def source_record(s: PoolSource) -> dict:
    """One source in seed 003's shape, then the scheduler's extras."""
    return {
        "id": s.id,
        "url": masked_url(s.url),
        "parser_name": s.parser_name,
        "cron_schedule": s.cron_schedule,
        "default_protocol": s.default_protocol,
        "is_active": s.is_active,
        "last_scraped_at": isoformat_z(s.last_scraped_at),
        "created_at": isoformat_z(s.created_at),
        "next_scrape_at": isoformat_z(s.next_scrape_at),
        "last_result": s.last_result,
        "last_error": s.last_error,
    }


def check_record(c: PoolCheck) -> dict:
    """One check of a proxy's history (`recent_checks`)."""
    return {
        "checker_name": c.checker_name,
        "stage": c.stage,
        "passed": c.passed,
        "latency_ms": _rounded(c.latency_ms, 1),
        "detail": c.detail,
        "created_at": isoformat_z(c.created_at),
    }
