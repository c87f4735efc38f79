"""Test data for the pool: proxies and checks written straight into an admin's store (the API
under test reads them as any scrape or check would have left them), and pool API clients."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta

import requests
from sqlalchemy import Engine, select

from models import User
from models.base import utcnow
from models.crypto import KeyRing
from models.pool import PoolCheck, PoolProxy
from models.store import make_engine, make_session_factory
from pool.keys import issue_key
from pool.passwords import seal_password
from tests.support import TEST_MASTER_KEYS

_hosts = itertools.count(1)
# Rows a test writes are not due a check before 2100: the admin's check cycle (a scheduler
# job) would otherwise grade them while the test compares the API's answers with them.
NEVER_DUE = 4102444800.0


def store_engine(database_url: str, _engines: dict[str, Engine] = {}) -> Engine:  # noqa: B006
    """One engine per store for the whole test process."""
    if database_url not in _engines:
        _engines[database_url] = make_engine(database_url)
    return _engines[database_url]


def proxy_row(**fields) -> dict:
    """A pool proxy's columns: a unique 198.51.100.x/10.x endpoint unless given, then `fields`."""
    n = next(_hosts)
    row = {
        "id": str(uuid.uuid4()),
        "host": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
        "port": 8000 + n % 1000,
        "protocol": "http",
        "status": "unchecked",
        "score": 0.0,
        "first_seen_at": utcnow() - timedelta(days=1),
        "next_check_at": NEVER_DUE,
        "tags": {},
    }
    row.update(fields)
    return row


def insert_proxies(database_url: str, rows: list[dict]) -> list[dict]:
    """Write `rows` (from `proxy_row`) as pool proxies; return them."""
    with make_session_factory(store_engine(database_url))() as session:
        session.add_all(PoolProxy(**row) for row in rows)
        session.commit()
    return rows


def with_credentials(row: dict, username: str, password: str) -> dict:
    """`row` with a user name and its password sealed as the scrape seals it (the test
    admins' key ring)."""
    sealed = seal_password(KeyRing.parse(TEST_MASTER_KEYS), row["id"], password)
    return {
        **row,
        "username": username,
        "password_key_id": sealed.key_id,
        "password_ciphertext": sealed.ciphertext,
    }


def insert_checks(database_url: str, proxy_id: str, checks: list[dict]) -> None:
    """Write check history rows of one proxy (`checker_name`, `stage`, `passed`, ...)."""
    with make_session_factory(store_engine(database_url))() as session:
        session.add_all(PoolCheck(proxy_id=proxy_id, **check) for check in checks)
        session.commit()


def stored_key_user(database_url: str, email: str) -> tuple[str, dict]:
    """A new `pp_` key for the user with `email` (issued in-process as the CLI issues it);
    the key and the stored row's columns."""
    with make_session_factory(store_engine(database_url))() as session:
        user = session.scalar(select(User).where(User.email == email))
        key, raw = issue_key(session, user)
        session.commit()
        return raw, {"prefix": key.prefix, "key_hash": key.key_hash}


def minutes_ago(minutes: float, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(minutes=minutes)


class PoolApi:
    """`requests` against one admin's `/pool`, with one `pp_` key (or none)."""

    def __init__(self, base_url: str, key: str | None):
        self.base_url = base_url.rstrip("/") + "/pool"
        self.session = requests.Session()
        if key is not None:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=30, **kwargs)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.base_url + path, timeout=30, **kwargs)


def assert_pool_error(response: requests.Response, status: int, code: str) -> dict:
    """`response` is seed 003's error shape with `status` and `code`; its details."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    body = response.json()
    assert list(body) == ["error"] and list(body["error"]) == ["code", "message", "details"]
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body
    return body["error"]["details"]
