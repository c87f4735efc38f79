"""What each client has spent, beside the limit counters: in memory, or in Redis.

The data plane checks a request's price against `granted - spent`, where
`granted` (the sum of grants) comes with the configuration snapshot and `spent`
lives here. `spent` never falls below the debits already in the ledger (the
snapshot's `debited`, given as a floor): a fresh process, or a Redis that lost
its data, starts from the ledger. One call checks and takes the price at once,
so concurrent requests never overdraw: in one process (nothing awaits between
check and update) and, with `PORTCULLIS_REDIS_URL`, across every process (one
Lua script). Redis failures raise `CountersUnavailable`, like the limit counters.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from addons.counters import Counters, RedisCounters

KEY_PREFIX = "portcullis:credit:"


@dataclass(frozen=True)
class Spend:
    """One check: whether the price was taken, and the client's total spent after it.

    `spend(client_id, floor, granted, cost, needed)` takes `cost` when at least
    `needed` micro-credits are left (`granted - spent`), otherwise nothing.
    """

    allowed: bool
    spent: int  # micro-credits


class MemorySpending:
    """Exact within this process."""

    def __init__(self):
        self._spent: dict[str, int] = {}

    async def spend(
        self, client_id: str, floor: int, granted: int, cost: int, needed: int
    ) -> Spend:
        spent = max(self._spent.get(client_id, 0), floor)
        if granted - spent < needed:
            self._spent[client_id] = spent
            return Spend(False, spent)
        self._spent[client_id] = spent + cost
        return Spend(True, spent + cost)


# KEYS[1]: the client's spent total. ARGV: floor, granted, cost, needed (|n| < 2^53).
# Takes `cost` if at least `needed` is left.
SPEND_SCRIPT = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if floor > spent then spent = floor end
local allowed = 0
if tonumber(ARGV[2]) - spent >= tonumber(ARGV[4]) then
  spent = spent + tonumber(ARGV[3])
  allowed = 1
end
redis.call('SET', KEYS[1], string.format('%d', spent))
return {allowed, string.format('%d', spent)}
"""
SPEND_SHA = hashlib.sha1(SPEND_SCRIPT.encode()).hexdigest()


class RedisSpending:
    """Shared by every process using the same Redis; never expires."""

    def __init__(self, counters: RedisCounters):
        self.counters = counters

    async def spend(
        self, client_id: str, floor: int, granted: int, cost: int, needed: int
    ) -> Spend:
        keys = [f"{KEY_PREFIX}{client_id}:spent"]
        args = [floor, granted, cost, needed]
        allowed, spent = await self.counters._call(self._run, keys, args)
        return Spend(bool(int(allowed)), int(spent))

    async def _run(self, keys: list[str], args: list[int]):
        from redis.exceptions import NoScriptError

        client = self.counters.client
        try:
            return await client.evalsha(SPEND_SHA, len(keys), *keys, *args)
        except NoScriptError:  # not cached (a restart): the script did not run
            return await client.eval(SPEND_SCRIPT, len(keys), *keys, *args)


class Spending:
    """Follows the limit counters' choice (memory or Redis), made when mitmproxy starts."""

    def __init__(self):
        self._memory = MemorySpending()
        self._redis: RedisSpending | None = None

    def for_counters(self, counters: Counters) -> MemorySpending | RedisSpending:
        if isinstance(counters, RedisCounters):
            if self._redis is None or self._redis.counters is not counters:
                self._redis = RedisSpending(counters)
            return self._redis
        return self._memory
