"""Notifier test support: an admin that may call 127.0.0.1, delivers often, retries fast."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from models.store import make_engine, make_session_factory
from tests.support import AdminServer, Api, poll, start_admin

# Deliveries checked every 100 ms; retries after at most 5, 10, 20 ms ... (11 attempts in all).
FAST_NOTIFY = {
    "PORTCULLIS_ALLOW_TARGETS": "127.0.0.1",
    "PORTCULLIS_NOTIFY_INTERVAL_MS": "100",
    "PORTCULLIS_NOTIFY_RETRY_BASE_MS": "5",
}
DELIVERY_WAIT_S = 30


def start_notify_admin(var_dir: Path, **extra_env: str) -> AdminServer:
    return start_admin(var_dir, **FAST_NOTIFY, **extra_env)


@contextmanager
def store_session(server: AdminServer) -> Iterator[Session]:
    """A session on the admin's store (to record events as a producer in another process does)."""
    engine = make_engine(server.database_url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def webhook(url: str, patterns: list[str], **overrides) -> dict:
    return {
        "name": "Ops hook",
        "type": "webhook",
        "subscribesTo": patterns,
        "url": url,
        **overrides,
    }


def deliveries(api: Api, client_id: str, notifier_id: str) -> list[dict]:
    answer = api.get(f"/api/clients/{client_id}/notifiers/{notifier_id}/deliveries?limit=100")
    assert answer.status_code == 200, answer.text
    return answer.json()["deliveries"]


def finished(api: Api, client_id: str, notifier_id: str, count: int = 1) -> list[dict]:
    """The notifier's deliveries once `count` of them are delivered or failed (deadline)."""

    def check():
        rows = deliveries(api, client_id, notifier_id)
        done = [d for d in rows if d["status"] in ("delivered", "failed")]
        return rows if len(done) >= count else None

    rows = poll(check, DELIVERY_WAIT_S)
    assert rows is not None, deliveries(api, client_id, notifier_id)
    return rows


def payload_of(body: bytes) -> dict:
    return json.loads(body)
