"""Counters for limits: check and consume several windows at once, atomically.

One interface (`Counters.consume`), two implementations:

- `MemoryCounters`: a dict in this process; exact within one process (every call
  runs on mitmproxy's one event loop without awaiting, so nothing interleaves).
- `RedisCounters` (`PORTCULLIS_REDIS_URL`): one Lua script per call, run with
  EVALSHA (EVAL when Redis answers NOSCRIPT, e.g. after a restart), so several
  processes share exact counts in one round trip. Any Redis error or timeout
  raises `CountersUnavailable`; the caller refuses the request (fail closed).
  redis-py reconnects on the next command, so requests flow again as soon as
  Redis is back. A command is sent again once, at once, only when its connection
  failed (a pooled connection Redis closed by restarting); never after a
  timeout, when the script may well have counted. (A connection that breaks
  after the script ran but before its answer came back counts that request
  twice: one unit too many, never one too few.)

Windows are aligned to UTC clock boundaries (minute, hour, day, calendar month)
taken from this host's clock (`Clock`; tests may shift it, see there), and each
counter expires when its window ends.
A call either increments every window (all were within their limits) or none;
the outcome gives each window's limit, use and reset, which is what `RateLimit`
headers and "approaching the limit" warnings are built from.

`SharedCounters` is the mitmproxy addon that picks the implementation at start,
pings Redis in the background (so health knows its state without traffic) and
reports that state for `/_portcullis/health`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from mitmproxy import ctx, exceptions
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from models.settings import Settings
from models.windows import window_bounds

log = logging.getLogger("portcullis.counters")

TIMEOUT_OPTION = "portcullis_redis_timeout_ms"
CLOCK_OPTION = "portcullis_test_clock_file"
DEFAULT_TIMEOUT_MS = 250
PING_INTERVAL_S = 2.0
KEY_PREFIX = "portcullis:count:"


class Clock:
    """The time the counters' windows are taken from: this host's clock (epoch seconds).

    For tests only: with `portcullis_test_clock_file` set, the clock is shifted by the
    seconds that file holds (a float; no file or an empty one: no shift). The file is
    read on every reading, so a test moves the clock of a running gateway by writing
    it. Unset (the default, and always in production) nothing is read.
    """

    def __init__(self, offset_file: Path | None = None):
        self.offset_file = offset_file

    def __call__(self) -> float:
        if self.offset_file is None:
            return time.time()
        return time.time() + _offset(self.offset_file)


def _offset(path: Path) -> float:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return 0.0
    return float(text) if text else 0.0


class Window(enum.Enum):
    """A counting window, aligned to UTC clock boundaries."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"

    def bounds(self, now: float) -> tuple[int, int]:
        """The (start, end) epoch seconds of the window holding `now`."""
        return window_bounds(self.value, now)


# Limit, WindowCount and Outcome are named tuples, not dataclasses: several are
# made for every counted request, and a tuple is made several times faster.
class Limit(NamedTuple):
    """At most `limit` units per `window` on the counter named `key` (e.g. `proxy:<id>`)."""

    key: str
    window: Window
    limit: int


class WindowCount(NamedTuple):
    """One window after a call: its limit, the units used in it, and when it resets."""

    limit: Limit
    used: int  # after this call when allowed; as it stood when refused
    resets_at: int  # epoch seconds: the window's end

    @property
    def remaining(self) -> int:
        return max(self.limit.limit - self.used, 0)

    def resets_in(self, now: float) -> int:
        """Whole seconds until the window resets (at least 1): a `Retry-After` value."""
        return max(math.ceil(self.resets_at - now), 1)


class Outcome(NamedTuple):
    """What one `consume` call decided, window by window in the order asked."""

    allowed: bool
    windows: tuple[WindowCount, ...]
    refused: WindowCount | None = None  # of the full windows, the one that resets last


class CountersUnavailable(Exception):
    """The counters could not be read or updated (Redis down, slow or failing)."""


class Counters(Protocol):
    kind: str

    async def consume(
        self, limits: Sequence[Limit], cost: int = 1, now: float | None = None
    ) -> Outcome:
        """Add `cost` to every window if all stay within their limits; otherwise to none."""
        ...


def _outcome(
    limits: Sequence[Limit], used: Sequence[int], cost: int, resets: Sequence[int]
) -> Outcome:
    """The outcome for counts as they stood before this call (`used`)."""
    full = [i for i, limit in enumerate(limits) if used[i] + cost > limit.limit]
    if not full:
        counts = tuple(
            WindowCount(limit, used[i] + cost, resets[i]) for i, limit in enumerate(limits)
        )
        return Outcome(True, counts)
    counts = tuple(WindowCount(limit, used[i], resets[i]) for i, limit in enumerate(limits))
    refused = max((counts[i] for i in full), key=lambda count: count.resets_at)
    return Outcome(False, counts, refused)


def _current(limits: Sequence[Limit], now: float) -> tuple[list[str], list[int]]:
    """The storage keys of the windows holding `now`, and when each ends."""
    keys, ends = [], []
    for key, window, _limit in limits:
        name = window.value
        start, end = window_bounds(name, now)
        keys.append(f"{KEY_PREFIX}{key}:{name}:{start}")
        ends.append(end)
    return keys, ends


class MemoryCounters:
    """Exact within this process; nothing shared with other processes."""

    kind = "memory"
    SWEEP_EVERY = 10_000

    def __init__(self, clock: Clock | None = None):
        self.clock = clock or Clock()
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (count, expires at)
        self._calls = 0

    async def consume(
        self, limits: Sequence[Limit], cost: int = 1, now: float | None = None
    ) -> Outcome:
        return self.consume_now(limits, cost, self.clock() if now is None else now)

    def consume_now(self, limits: Sequence[Limit], cost: int, now: float) -> Outcome:
        """`consume` without awaiting anything: atomic on the event loop."""
        self._calls += 1
        if self._calls % self.SWEEP_EVERY == 0:
            self._sweep(now)
        keys, ends = _current(limits, now)
        used = [self._counts.get(key, (0, 0))[0] for key in keys]
        outcome = _outcome(limits, used, cost, ends)
        if outcome.allowed:
            for key, count in zip(keys, outcome.windows, strict=True):
                self._counts[key] = (count.used, count.resets_at)
        return outcome

    def _sweep(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}


# KEYS: one counter per window. ARGV[1]: cost; then per key: limit, expiry (epoch ms).
# Returns the counts as they stood before the call; increments all only if all fit.
CONSUME_SCRIPT = """
local cost = tonumber(ARGV[1])
local used = {}
local fits = true
for i, key in ipairs(KEYS) do
  used[i] = tonumber(redis.call('GET', key) or '0')
  if used[i] + cost > tonumber(ARGV[2 * i]) then fits = false end
end
if fits then
  for i, key in ipairs(KEYS) do
    redis.call('INCRBY', key, cost)
    redis.call('PEXPIREAT', key, ARGV[2 * i + 1])
  end
end
return used
"""
CONSUME_SHA = hashlib.sha1(CONSUME_SCRIPT.encode()).hexdigest()


class RedisCounters:
    """Counters in Redis, exact across every process that shares it."""

    kind = "redis"

    def __init__(self, url: str, timeout_s: float, clock: Clock | None = None):
        self.clock = clock or Clock()
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self.last_ok_at: float | None = None  # monotonic
        self.failing_since: float | None = None
        self.last_error: str | None = None

    async def consume(
        self, limits: Sequence[Limit], cost: int = 1, now: float | None = None
    ) -> Outcome:
        now = self.clock() if now is None else now
        keys, ends = _current(limits, now)
        args: list[int] = [cost]
        for limit, end in zip(limits, ends, strict=True):
            args += [limit.limit, end * 1000]
        used = await self._call(self._run, keys, args)
        return _outcome(limits, [int(n) for n in used], cost, ends)

    async def _run(self, keys: list[str], args: list[int]):
        try:
            return await self.client.evalsha(CONSUME_SHA, len(keys), *keys, *args)
        except NoScriptError:
            # Not in Redis's script cache (a restart, SCRIPT FLUSH): EVAL caches it again.
            # The script did not run, so sending it once more cannot count twice.
            return await self.client.eval(CONSUME_SCRIPT, len(keys), *keys, *args)

    async def ping(self) -> None:
        await self._call(self.client.ping)

    async def _call(self, command, *args):
        try:
            result = await command(*args)
        except (RedisError, OSError, TimeoutError) as exc:
            if self.failing_since is None:
                self.failing_since = time.monotonic()
                log.warning("Redis unreachable: %s: %s", type(exc).__name__, exc)
            self.last_error = type(exc).__name__
            raise CountersUnavailable(type(exc).__name__) from exc
        if self.failing_since is not None:
            log.info("Redis reachable again")
        self.last_ok_at, self.failing_since, self.last_error = time.monotonic(), None, None
        return result

    @property
    def reachable(self) -> bool:
        return self.last_ok_at is not None and self.failing_since is None

    async def close(self) -> None:
        await self.client.aclose()


class SharedCounters:
    """The addon owning the counters every limiting stage uses (`.counters`)."""

    def __init__(self):
        self.clock = Clock()
        self.counters: Counters = MemoryCounters(self.clock)
        self._pinger: asyncio.Task | None = None

    def load(self, loader) -> None:
        loader.add_option(
            TIMEOUT_OPTION,
            int,
            DEFAULT_TIMEOUT_MS,
            "Milliseconds to wait for Redis (PORTCULLIS_REDIS_URL) to connect or answer; "
            "then the request answers 503 LIMITS_UNAVAILABLE.",
        )
        loader.add_option(
            CLOCK_OPTION,
            str,
            "",
            "TESTS ONLY: a file holding seconds to add to the clock of the limit windows "
            "(read on every count). Leave empty in production.",
        )

    def configure(self, updated) -> None:
        if TIMEOUT_OPTION in updated and getattr(ctx.options, TIMEOUT_OPTION) < 1:
            raise exceptions.OptionsError(f"{TIMEOUT_OPTION} must be positive")
        if CLOCK_OPTION in updated:
            path = getattr(ctx.options, CLOCK_OPTION)
            self.clock.offset_file = Path(path) if path else None
            if path:
                log.warning("test clock: limit windows follow the offset in %s", path)

    async def running(self) -> None:
        url = Settings.from_env().redis_url
        if not url:
            log.info("counters in memory: exact for this process only")
            return
        timeout_s = getattr(ctx.options, TIMEOUT_OPTION) / 1000
        self.counters = RedisCounters(url, timeout_s, self.clock)
        self._pinger = asyncio.create_task(self._ping_forever(self.counters))
        log.info("counters in Redis, shared by every process using it")

    async def _ping_forever(self, counters: RedisCounters) -> None:
        while True:
            with contextlib.suppress(CountersUnavailable):
                await counters.ping()
            await asyncio.sleep(PING_INTERVAL_S)

    async def done(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        if isinstance(self.counters, RedisCounters):
            with contextlib.suppress(Exception):
                await self.counters.close()

    def health(self) -> dict | None:
        """Redis's part of the health answer (None when not configured); never its URL."""
        counters = self.counters
        if not isinstance(counters, RedisCounters):
            return None
        age = None
        if counters.last_ok_at is not None:
            age = round(time.monotonic() - counters.last_ok_at, 3)
        return {
            "configured": True,
            "reachable": counters.reachable,
            "lastOkAgeSeconds": age,
            "error": counters.last_error,
        }
