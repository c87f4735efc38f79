"""`TokenSource`: the token an oauth2 or customToken target credential injects right now.

Asked by the forward stage (Proxy API) and the dispatcher (Async API) before
they build the upstream request. A fresh cached token is answered from memory;
otherwise one mint per credential runs (single-flight, `flight.py`), shared
through Redis when `PORTCULLIS_REDIS_URL` is set (`shared.py`). The token
request leaves through the process's `UpstreamClient`, so it gets the SSRF
guard, the timeouts and a bounded read like every other outbound request, and
never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from mitmproxy import ctx, exceptions

from addons.ssrf import TargetRefused
from addons.tokens import custom, oauth2
from addons.tokens.flight import SingleFlight
from addons.tokens.grants import GrantRefresher, refreshes
from addons.tokens.minted import MintedToken, TokenEndpointUnreachable, TokenError
from addons.tokens.shared import SharedTokens, SharedUnavailable
from addons.upstream import (
    ResponseTooLarge,
    TargetTimeout,
    Timeouts,
    UpstreamClient,
    UpstreamFailure,
    UpstreamRequest,
    UpstreamResponse,
)
from models.crypto import load_key_ring
from models.settings import Settings
from models.store import make_engine, make_session_factory

log = logging.getLogger("portcullis.tokens")
ClientSource = Callable[[], Awaitable[UpstreamClient]]
TIMEOUT_OPTION = "portcullis_token_timeout_ms"
MAX_ANSWER_BYTES = 64 * 1024
REDIS_TIMEOUT_S = 0.5
LOCK_POLL_S = 0.05  # how often a process waiting for another's mint looks in Redis


class TokenSource:
    """The addon minting, caching and sharing target tokens; see the module docstring."""

    def __init__(self, client_source: ClientSource):
        self.client_source = client_source
        self.flights = SingleFlight()
        self.shared: SharedTokens | None = None
        self.grants = GrantRefresher(self.exchange)
        self._redis_failing = False

    def load(self, loader) -> None:
        loader.add_option(
            TIMEOUT_OPTION,
            int,
            10_000,
            "Milliseconds a token endpoint (oauth2, customToken target credentials) may take "
            "to accept a connection, and to answer; then 502 TOKEN_ENDPOINT_UNREACHABLE.",
        )

    def configure(self, updated) -> None:
        if TIMEOUT_OPTION in updated and getattr(ctx.options, TIMEOUT_OPTION) < 1:
            raise exceptions.OptionsError(f"{TIMEOUT_OPTION} must be positive")

    def running(self) -> None:
        settings = Settings.from_env()
        # The config addon ran first: the key ring exists (generated there if need be).
        key_ring, _ = load_key_ring(settings.master_keys, settings.master_key_file)
        self.grants.start(make_session_factory(make_engine(settings.database_url)), key_ring)
        if not settings.redis_url:
            return
        self.shared = SharedTokens(settings.redis_url, key_ring, REDIS_TIMEOUT_S)
        log.info("minted target tokens shared through Redis, sealed")

    async def done(self) -> None:
        if self.shared is not None:
            with contextlib.suppress(Exception):
                await self.shared.close()

    async def token(self, credential, rejected: str | None = None) -> MintedToken:
        """A currently valid token for `credential` (a `CredentialView`).

        `rejected`: a token the target just refused (401); a different one comes
        back, minted now unless another caller already replaced it. Raises
        `TokenError` (the caller's answer) when none can be had.
        """
        key = credential.fingerprint
        if credential.grant is not None:  # a Connect (a new generation) starts afresh
            key += f"#{credential.grant.status}:{credential.grant.generation}"
        token = await self.flights.get(key, lambda: self._mint(credential, rejected), rejected)
        if token.value == rejected:  # joined a mint that began before the refusal
            token = await self.flights.get(key, lambda: self._mint(credential, rejected), rejected)
        return token

    async def _mint(self, credential, rejected: str | None) -> MintedToken:
        try:
            if self.shared is None:
                return await self._mint_here(credential)
            return await self._mint_shared(credential, rejected)
        except TokenError as exc:
            log.warning("no token for target credential %s: %s", credential.id, exc.message)
            raise

    async def _mint_shared(self, credential, rejected: str | None) -> MintedToken:
        shared, cid, fingerprint = self.shared, credential.id, credential.fingerprint
        hold_ms = 3 * getattr(ctx.options, TIMEOUT_OPTION)
        try:
            token = await shared.get(cid, fingerprint)
            if _usable(token, rejected):
                return token
            nonce = await shared.lock(cid, hold_ms)
            if nonce is None:  # another process mints: wait for its token (bounded)
                deadline = time.monotonic() + hold_ms / 1000
                while time.monotonic() < deadline:
                    await asyncio.sleep(LOCK_POLL_S)
                    token = await shared.get(cid, fingerprint)
                    if _usable(token, rejected):
                        return token
                    if not await shared.locked(cid):  # done: its token, or it failed
                        token = await shared.get(cid, fingerprint)
                        if _usable(token, rejected):
                            return token
                        break  # its mint failed (or it died): try ourselves
                nonce = await shared.lock(cid, hold_ms)
            self._redis_back()
        except SharedUnavailable as exc:
            self._redis_down(exc)
            return await self._mint_here(credential)
        try:
            token = await self._mint_here(credential)
            with contextlib.suppress(SharedUnavailable):
                await shared.put(cid, fingerprint, token, time.time())
            return token
        finally:
            if nonce is not None:
                with contextlib.suppress(SharedUnavailable):
                    await shared.unlock(cid, nonce)

    async def _mint_here(self, credential) -> MintedToken:
        """One token request to the credential's endpoint, and its answer read."""
        settings, secret = credential.settings, credential.secret
        if credential.auth_type == "customToken":
            request, body = custom.token_request(credential.id, settings, secret)
            response = await self.exchange(credential.id, request, body)
            return custom.read_answer(credential.id, settings, response)
        if refreshes(credential):
            return await self.grants.mint(credential)
        request, body = oauth2.token_request(settings, secret)
        response = await self.exchange(credential.id, request, body)
        return oauth2.read_answer(credential.id, response).token

    async def exchange(
        self, credential_id: str, request: UpstreamRequest, body: bytes
    ) -> UpstreamResponse:
        """Send a token request; `TokenEndpointUnreachable` when no answer came back."""
        client = await self.client_source()
        seconds = getattr(ctx.options, TIMEOUT_OPTION) / 1000
        try:
            return await client.send(
                request, body, MAX_ANSWER_BYTES, timeouts=Timeouts(seconds, seconds)
            )
        except TargetRefused as exc:
            log.warning("token endpoint of %s refused by the SSRF guard: %s", credential_id, exc)
            what = "is at an address the gateway may not connect to"
        except TargetTimeout:
            what = f"did not answer within {seconds:g}s"
        except ResponseTooLarge:
            what = f"answered with more than {MAX_ANSWER_BYTES // 1024} KB"
        except UpstreamFailure as exc:
            log.warning("token endpoint of %s unreachable: %s", credential_id, exc)
            what = "could not be reached"
        raise TokenEndpointUnreachable(
            f"The token endpoint of target credential {credential_id} {what}"
        )

    def _redis_down(self, exc: Exception) -> None:
        if not self._redis_failing:
            log.warning("Redis unreachable for shared tokens (%s): minting in this process", exc)
        self._redis_failing = True

    def _redis_back(self) -> None:
        if self._redis_failing:
            log.info("Redis reachable again for shared tokens")
        self._redis_failing = False


def _usable(token: MintedToken | None, rejected: str | None) -> bool:
    return token is not None and token.fresh(time.time()) and token.value != rejected
