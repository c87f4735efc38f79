"""One process's minted tokens: a cache, and one mint in flight per credential.

Every caller waiting for the same credential awaits the same mint: 100 requests
arriving after a token expired cause one token request, not 100. The mint runs
as a task of its own, so a caller that gives up (its client went away) does not
cancel it for the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from addons.tokens.minted import MintedToken, TokenError

SWEEP_AT = 1024  # cached tokens (keys change with a credential's secret): expired ones go
Mint = Callable[[], Awaitable[MintedToken]]
# A refusal that will not change by itself (the provider refused the credential) is
# answered from memory this long, so a flood of callers does not flood the provider.
REFUSAL_HOLD_S = 5.0


class SingleFlight:
    """Cached tokens by key; `get` mints through `mint` when none is fresh."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._tokens: dict[str, MintedToken] = {}
        self._flights: dict[str, asyncio.Future[MintedToken]] = {}
        self._refusals: dict[str, tuple[float, TokenError]] = {}  # key → (until, refusal)

    def cached(self, key: str, rejected: str | None = None) -> MintedToken | None:
        """The fresh token for `key`, unless it is the `rejected` one."""
        token = self._tokens.get(key)
        if token is None or not token.fresh(self._clock()) or token.value == rejected:
            return None
        return token

    async def get(self, key: str, mint: Mint, rejected: str | None = None) -> MintedToken:
        """A fresh token for `key` other than `rejected` (a value the target refused)."""
        token = self.cached(key, rejected)
        if token is not None:
            return token
        refusal = self._refusals.get(key)
        if refusal is not None and self._clock() < refusal[0]:
            raise refusal[1]
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(mint())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: str, flight: asyncio.Future[MintedToken]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if flight.cancelled():
            return
        failure = flight.exception()
        if isinstance(failure, TokenError) and not failure.transient:
            self._refusals[key] = (self._clock() + REFUSAL_HOLD_S, failure)
        elif failure is None:
            self._refusals.pop(key, None)
            if len(self._tokens) >= SWEEP_AT:
                now = self._clock()
                self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
            self._tokens[key] = flight.result()

    def forget(self, key: str) -> None:
        self._tokens.pop(key, None)
        self._refusals.pop(key, None)
