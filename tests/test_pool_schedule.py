"""Scrapes on the cron schedule: two real admin processes on one store tick every 200 ms;
a source made due (by writing its `next_scrape_at`, the one thing the tick reads) is scraped
by exactly one of them at a time, and a manual scrape meanwhile is refused with a 409."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from models.base import utcnow
from models.pool import PoolSource
from tests.pool_source_server import SourceServer
from tests.pool_source_support import pool_error, pool_user
from tests.pool_support import PoolApi
from tests.support import poll, start_admin
from tests.test_pool_sources import LOOPBACK, store_sessions

TICKING = {
    "PORTCULLIS_POOL_ALLOW_SOURCES": LOOPBACK,
    "PORTCULLIS_POOL_SCHEDULE_TICK_MS": "200",
    "PORTCULLIS_POOL_CHECK_INTERVAL_MS": "3600000",  # no checks of the listed addresses
    # The check cycle stops before claiming any proxy (its first tick runs at start).
    "PORTCULLIS_POOL_JUDGE_URL": "http://127.0.0.1:9/no-judge",
}
LIST_SIZE = 5000  # issue 16: 5,000 candidates from one source in one scrape


@pytest.fixture(scope="module")
def two_admins(tmp_path_factory):
    first = start_admin(tmp_path_factory.mktemp("scrapes-a"), **TICKING)
    try:
        second = start_admin(
            tmp_path_factory.mktemp("scrapes-b"), DATABASE_URL=first.database_url, **TICKING
        )
    except BaseException:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def big_list(count: int) -> str:
    lines = [f"198.51.{n // 250}.{n % 250 + 1}:{8000 + n % 7}" for n in range(count)]
    return "# a big list\n" + "\n".join(lines) + "\n"


def source_of(api: PoolApi, source_id: str) -> dict:
    items = api.request("GET", "/sources", params={"limit": 200}).json()["items"]
    return next(s for s in items if s["id"] == source_id)


def test_due_source_scraped_once_at_a_time_across_admins(two_admins):
    first, second = two_admins
    api_a = pool_user(first, "root@schedule.test", platform_admin=True)
    api_b = PoolApi(
        second.base_url, api_a.session.headers["Authorization"].split()[1]
    )  # one store, one key
    with SourceServer() as source_server:
        path = "/schedule/big.txt"
        url = source_server.serve(path, big_list(LIST_SIZE))
        source_server.hold(path)
        made = api_a.request(
            "POST",
            "/sources",
            json={"url": url, "parser_name": "plaintext", "cron_schedule": "* * * * *"},
        )
        assert made.status_code == 201, made.text
        source_id = made.json()["id"]
        assert made.json()["next_scrape_at"] > utcnow().isoformat()[:19]  # not due yet

        paused_url = source_server.serve("/schedule/paused.txt", "192.0.2.9:80\n")
        paused = api_a.request(
            "POST",
            "/sources",
            json={"url": paused_url, "parser_name": "plaintext", "is_active": False},
        ).json()
        assert paused["next_scrape_at"] is None

        due = utcnow() - timedelta(minutes=5)
        with store_sessions(first)() as session:
            for made_id, at in [(source_id, due), (paused["id"], due - timedelta(minutes=1))]:
                session.execute(
                    update(PoolSource).where(PoolSource.id == made_id).values(next_scrape_at=at)
                )
            session.commit()

        source_server.wait_hits(path, 1)  # one admin's tick claimed it; the answer is held
        for api in (api_b, api_a):  # whichever holds the lease, neither may start another
            error = pool_error(
                api.request("POST", f"/sources/{source_id}/scrape"), 409, "SCRAPE_IN_PROGRESS"
            )
            assert error["details"] == {"source_id": source_id}
        deleting = api_b.request("DELETE", f"/sources/{source_id}")  # would orphan its rows
        pool_error(deleting, 409, "SCRAPE_IN_PROGRESS")
        source_server.release(path)

        scraped = poll(lambda: source_of(api_a, source_id)["last_scraped_at"], timeout=60)
        source = source_of(api_b, source_id)
        assert scraped and source["last_error"] is None
        result = source["last_result"]
        assert result["proxies_discovered"] == LIST_SIZE
        assert (result["proxies_new"], result["proxies_updated"]) == (LIST_SIZE, 0)
        assert source["next_scrape_at"] > source["last_scraped_at"][:16]  # the next minute
        assert source_server.most_in_flight[path] == 1  # never two scrapes at once
        # An inactive source is never scheduled, even with a time in the past (it came first:
        # a tick that scraped it would have done so before the big list).
        assert source_server.hits.get("/schedule/paused.txt", 0) == 0

        again = api_b.request("POST", f"/sources/{source_id}/scrape")  # the other admin, by hand
        assert again.status_code == 200, again.text
        assert (again.json()["proxies_new"], again.json()["proxies_updated"]) == (0, LIST_SIZE)
        assert source_server.most_in_flight[path] == 1
        # A short list against the big pool: two proxies it already has, one new one.
        small = source_server.serve(
            "/schedule/small.txt", "198.51.0.1:8000\n198.51.0.2:8001\n192.0.2.1:3128\n"
        )
        made = api_b.request("POST", "/sources", json={"url": small, "parser_name": "plaintext"})
        counts = api_b.request("POST", f"/sources/{made.json()['id']}/scrape").json()
        assert (counts["proxies_new"], counts["proxies_updated"]) == (1, 2)
        print(
            f"\nscrape of {LIST_SIZE} new: {result['duration_ms']} ms; "
            f"all seen again: {again.json()['duration_ms']} ms"
        )
