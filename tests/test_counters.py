"""The counters behind every limit (addons/counters.py), in memory and in a real redis-server.

The same tests run against both implementations: windows aligned to UTC clock
boundaries (minute, hour, day, calendar month), several windows checked and
consumed all or none, exact under concurrency, what a refusal says (which
window, when it resets). Redis-only: keys expire when their window ends, a
flushed script cache is reloaded, and a Redis that does not answer raises the
one exception the limit stage turns into a 503.
"""

from __future__ import annotations

import asyncio
import calendar
import socket
import time
import uuid

import pytest
import redis

from addons.counters import (
    Clock,
    CountersUnavailable,
    Limit,
    MemoryCounters,
    RedisCounters,
    Window,
)
from tests.proxy_support import free_port
from tests.redis_support import RedisServer

TIMEOUT_S = 0.5  # outage tests: how long a dead or silent Redis may take to be reported
# Tests of counting against a healthy Redis: room for 60 connections opened at once on a
# loaded machine (0.5 s once timed out connecting during a full `make test`).
HEALTHY_TIMEOUT_S = 5.0


def utc(*parts: int) -> int:
    """Epoch seconds of a UTC date and time."""
    return calendar.timegm((*parts, 0, 0, 0, 0, 0, 0)[:6])


# A day well in the future: Redis keys written for it must not expire during the test.
FUTURE_DAY = utc(2099, 12, 31)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def make_counters(request):
    """A factory (inside the test's event loop) for the implementation under test."""
    if request.param == "memory":
        return MemoryCounters
    server = request.getfixturevalue("redis_server")
    return lambda clock=None: RedisCounters(server.url, HEALTHY_TIMEOUT_S, clock)


def run(coroutine):
    return asyncio.run(coroutine)


def key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def consume_many(counters, limits, times: int, now: float) -> list:
    return [await counters.consume(limits, now=now) for _ in range(times)]


def test_a_minute_window_admits_exactly_its_limit_and_says_when_it_resets(make_counters):
    minute = Limit(key(), Window.MINUTE, 3)
    now = FUTURE_DAY + 12 * 3600 + 17.25  # 12:00:17.25

    async def scenario():
        counters = make_counters()
        outcomes = await consume_many(counters, [minute], 5, now)
        later = await counters.consume([minute], now=now + 42.7)  # 12:00:59.95, same window
        next_minute = await counters.consume([minute], now=now + 42.75)  # 12:01:00.00
        return outcomes, later, next_minute

    outcomes, later, next_minute = run(scenario())
    assert [o.allowed for o in outcomes] == [True, True, True, False, False]
    assert [o.windows[0].used for o in outcomes] == [1, 2, 3, 3, 3]  # refusals count nothing
    assert [o.windows[0].remaining for o in outcomes] == [2, 1, 0, 0, 0]
    refused = outcomes[3].refused
    assert refused is not None and refused.limit == minute
    assert refused.resets_at == FUTURE_DAY + 12 * 3600 + 60
    assert refused.resets_in(now) == 43  # whole seconds, rounded up
    assert not later.allowed and later.refused.resets_in(now + 42.7) == 1  # never 0
    assert next_minute.allowed and next_minute.windows[0].used == 1


def test_a_day_window_runs_from_midnight_to_midnight_utc(make_counters):
    day = Limit(key(), Window.DAY, 2)

    async def scenario():
        counters = make_counters()
        first = await consume_many(counters, [day], 2, FUTURE_DAY + 5)  # 00:00:05
        last_second = await counters.consume([day], now=FUTURE_DAY + 86399.9)  # 23:59:59.9
        next_day = await counters.consume([day], now=FUTURE_DAY + 86400)
        return first, last_second, next_day

    first, last_second, next_day = run(scenario())
    assert all(o.allowed for o in first)
    assert first[0].windows[0].resets_at == FUTURE_DAY + 86400
    assert not last_second.allowed and last_second.refused.limit == day
    assert next_day.allowed and next_day.windows[0].used == 1
    assert next_day.windows[0].resets_at == FUTURE_DAY + 2 * 86400


def test_all_windows_are_consumed_or_none(make_counters):
    """Per minute AND per day of one proxy: the day refuses, so the minute counts nothing."""
    name = key()
    minute, day = Limit(name, Window.MINUTE, 5), Limit(name, Window.DAY, 2)
    now = FUTURE_DAY + 3600

    async def scenario():
        counters = make_counters()
        both = await consume_many(counters, [minute, day], 4, now)
        minute_alone = await consume_many(counters, [minute], 4, now)
        return both, minute_alone

    both, minute_alone = run(scenario())
    assert [o.allowed for o in both] == [True, True, False, False]
    refusal = both[2]
    assert refusal.refused.limit == day
    assert [w.used for w in refusal.windows] == [2, 2]  # the minute was not incremented
    assert [(w.limit.window, w.remaining) for w in refusal.windows] == [
        (Window.MINUTE, 3),
        (Window.DAY, 0),
    ]
    # The minute window had room for exactly 3 more.
    assert [o.allowed for o in minute_alone] == [True, True, True, False]


def test_a_refusal_names_the_full_window_that_resets_last(make_counters):
    """When minute and day are both full, retrying after the minute would be refused again."""
    name = key()
    minute, day = Limit(name, Window.MINUTE, 1), Limit(name, Window.DAY, 1)
    now = FUTURE_DAY + 7200.5

    async def scenario():
        counters = make_counters()
        return await consume_many(counters, [minute, day], 2, now)

    _, refused = run(scenario())
    assert refused.refused.limit == day
    assert refused.refused.resets_in(now) == 86400 - 7200


def test_hour_and_month_windows_are_aligned_and_counted(make_counters):
    name = key()
    hour, month = Limit(name, Window.HOUR, 2), Limit(name, Window.MONTH, 3)
    february = utc(2096, 2, 29) + 23 * 3600 + 59 * 60  # leap day, 23:59

    async def scenario():
        counters = make_counters()
        outcomes = await consume_many(counters, [hour, month], 3, february)
        next_hour = await counters.consume([hour, month], now=february + 60)  # March 1st
        return outcomes, next_hour

    outcomes, next_hour = run(scenario())
    assert [o.allowed for o in outcomes] == [True, True, False]
    hour_count, month_count = outcomes[0].windows
    assert hour_count.resets_at == utc(2096, 3, 1)
    assert month_count.resets_at == utc(2096, 3, 1)
    assert outcomes[2].refused.limit == hour
    assert next_hour.allowed  # a new hour and a new month
    assert [w.used for w in next_hour.windows] == [1, 1]
    assert next_hour.windows[1].resets_at == utc(2096, 4, 1)


@pytest.mark.parametrize(
    ("window", "moment", "start", "end"),
    [
        (Window.MINUTE, utc(2031, 5, 6) + 3599.999, utc(2031, 5, 6) + 3540, utc(2031, 5, 6) + 3600),
        (Window.HOUR, utc(2031, 5, 6) + 3600, utc(2031, 5, 6) + 3600, utc(2031, 5, 6) + 7200),
        (Window.DAY, utc(2031, 5, 6) - 0.001, utc(2031, 5, 5), utc(2031, 5, 6)),
        (Window.MONTH, utc(2031, 12, 31) + 86399, utc(2031, 12, 1), utc(2032, 1, 1)),
        (Window.MONTH, utc(2032, 1, 1), utc(2032, 1, 1), utc(2032, 2, 1)),
        (Window.MONTH, utc(2100, 2, 15), utc(2100, 2, 1), utc(2100, 3, 1)),  # not a leap year
    ],
)
def test_window_bounds_are_utc_clock_boundaries(window, moment, start, end):
    assert window.bounds(moment) == (start, end)


def test_concurrent_calls_admit_exactly_the_limit(make_counters):
    limit = Limit(key(), Window.MINUTE, 20)

    async def scenario():
        counters = make_counters()
        now = FUTURE_DAY + 30
        return await asyncio.gather(*(counters.consume([limit], now=now) for _ in range(60)))

    outcomes = run(scenario())
    assert sum(o.allowed for o in outcomes) == 20
    assert sorted(o.windows[0].used for o in outcomes if o.allowed) == list(range(1, 21))


def test_redis_keys_expire_when_their_window_ends(redis_server):
    name = key()
    limits = [Limit(name, Window.MINUTE, 10), Limit(name, Window.DAY, 10)]

    async def scenario():
        counters = RedisCounters(redis_server.url, HEALTHY_TIMEOUT_S)
        try:
            return await counters.consume(limits)
        finally:
            await counters.close()

    outcome = run(scenario())
    assert outcome.allowed
    with redis.Redis.from_url(redis_server.url) as client:
        keys = sorted(client.keys(f"*{name}*"))
        assert len(keys) == 2
        for key_name in keys:
            expires_at_ms = client.pexpiretime(key_name)
            assert expires_at_ms in {w.resets_at * 1000 for w in outcome.windows}, key_name


def test_a_flushed_script_cache_is_reloaded(redis_server):
    limit = Limit(key(), Window.MINUTE, 5)

    async def scenario():
        counters = RedisCounters(redis_server.url, HEALTHY_TIMEOUT_S)
        try:
            first = await counters.consume([limit], now=FUTURE_DAY)
            await counters.client.script_flush()
            second = await counters.consume([limit], now=FUTURE_DAY)
            third = await counters.consume([limit], now=FUTURE_DAY)
            return first, second, third
        finally:
            await counters.close()

    outcomes = run(scenario())
    assert [o.windows[0].used for o in outcomes] == [1, 2, 3]  # counted once each


def test_redis_that_does_not_answer_raises_counters_unavailable():
    """Nothing listening, then a socket that accepts but never answers: both raise the one
    exception the limit stage turns into a 503."""
    limit = Limit(key(), Window.MINUTE, 5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        urls = [f"redis://127.0.0.1:{free_port()}/0", f"redis://{silent.getsockname()[0]}:"
                f"{silent.getsockname()[1]}/0"]  # fmt: skip
        for url in urls:

            async def scenario(url=url):
                counters = RedisCounters(url, TIMEOUT_S)
                try:
                    await counters.consume([limit])
                finally:
                    await counters.close()

            with pytest.raises(CountersUnavailable):
                run(scenario())


def test_redis_comes_back_without_a_new_client(tmp_path):
    """The same client raises while Redis is stopped and counts again once it is back."""
    server = RedisServer(tmp_path / "redis").start()
    limit = Limit(key(), Window.MINUTE, 100)

    async def scenario():
        counters = RedisCounters(server.url, TIMEOUT_S)
        try:
            before = await counters.consume([limit])
            server.stop()
            with pytest.raises(CountersUnavailable):
                await counters.consume([limit])
            assert not counters.reachable and counters.last_error
            server.start()  # same port, empty (no persistence)
            after = await counters.consume([limit])
            return before, after, counters.reachable
        finally:
            await counters.close()

    try:
        before, after, reachable = run(scenario())
    finally:
        server.stop()
    assert before.allowed and after.allowed and reachable
    assert after.windows[0].used == 1  # a fresh Redis: its counts started again


def test_a_redis_restart_between_two_calls_costs_no_request(tmp_path):
    """Pooled connections the old server closed are replaced, not reported as an outage."""
    server = RedisServer(tmp_path / "redis").start()
    limit = Limit(key(), Window.MINUTE, 100)

    async def scenario():
        counters = RedisCounters(server.url, TIMEOUT_S)
        try:
            await asyncio.gather(*(counters.consume([limit]) for _ in range(5)))  # 5 connections
            server.stop()
            server.start()
            return [await counters.consume([limit]) for _ in range(6)]
        finally:
            await counters.close()

    try:
        outcomes = run(scenario())
    finally:
        server.stop()
    assert [o.windows[0].used for o in outcomes] == [1, 2, 3, 4, 5, 6]


def test_the_test_clock_moves_the_windows_of_running_counters(make_counters, tmp_path):
    """`portcullis_test_clock_file`: the offset file is read on every count, so a test
    moves a running gateway's windows; no file or an empty one means no shift."""
    offset = tmp_path / "offset"
    clock = Clock(offset)

    async def scenario():
        counters = make_counters(clock)
        limits = [Limit(key(), Window.MINUTE, 1)]
        first = await counters.consume(limits)  # no file yet: the host's clock
        refused = await counters.consume(limits)
        offset.write_text("60")
        moved = await counters.consume(limits)  # the next minute: a fresh window
        offset.write_text("")
        back = await counters.consume(limits)  # empty: the host's clock again
        return first, refused, moved, back

    first, refused, moved, back = run(scenario())
    assert first.allowed and not refused.allowed and moved.allowed and not back.allowed
    assert moved.windows[0].resets_at - first.windows[0].resets_at == 60


def test_without_a_clock_file_the_clock_is_the_hosts(tmp_path):
    before = time.time()
    reading = Clock()()
    assert before <= reading <= time.time()
    (tmp_path / "offset").write_text("-3600.5")
    assert Clock(tmp_path / "offset")() < before - 3600
