"""Access tokens from a stored refresh token (oauth2 `authorization_code` / `refresh_token`).

The refresh token lives in `credential_grants`, not in the snapshot: it is read in a
worker thread when a refresh is due, under a store claim so one process at a time
refreshes (models/grant_store.py). A rotated refresh token is stored at once
(generation + 1) and the old one is never sent again; a process that lost the claim
waits for the winner and then reads the row afresh. A refused refresh token
(`invalid_grant`) marks the grant `needs_reconnect` (with a notification); from
then on this process answers 502 without asking the store or the provider again,
until the credential is connected anew (a newer generation in the snapshot).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from addons.tokens import oauth2
from addons.tokens.minted import (
    CredentialRejected,
    GrantStoreUnavailable,
    MintedToken,
    PendingAuthorization,
    TokenEndpointUnreachable,
    TokenError,
)
from addons.upstream import UpstreamRequest, UpstreamResponse
from models.crypto import KeyRing, SecretDecryptionError
from models.grant_store import (
    CLAIM_FOR,
    GrantRow,
    claim_refresh,
    mark_needs_reconnect,
    read_grant,
    release_claim,
    store_refresh,
)

log = logging.getLogger("portcullis.tokens")
GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})
POLL_S = 0.1  # how often a process waiting for another's refresh reads the row
Exchange = Callable[[str, UpstreamRequest, bytes], Awaitable[UpstreamResponse]]


def refreshes(credential) -> bool:
    """Whether the credential's access tokens come from a stored refresh token."""
    return credential.auth_type == "oauth2" and credential.settings.get("grantType") in GRANT_TYPES


def pending(credential_id: str) -> PendingAuthorization:
    return PendingAuthorization(
        f"Target credential {credential_id}: credential pending authorization; "
        "connect it in the admin first"
    )


def needs_reconnect(credential_id: str) -> CredentialRejected:
    return CredentialRejected(
        f"Target credential {credential_id} needs reconnecting (refresh token refused)",
        "invalid_grant",
    )


def grant_refusal(credential) -> TokenError | None:
    """What the snapshot already knows refuses every request (the Async API asks at once)."""
    if not refreshes(credential) or credential.grant is None:
        return None
    if credential.grant.status == "pending":
        return pending(credential.id)
    if credential.grant.status == "needs_reconnect":
        return needs_reconnect(credential.id)
    return None


class GrantRefresher:
    """Refreshes access tokens of grant credentials; `start` gives it the store."""

    def __init__(self, exchange: Exchange):
        self.exchange = exchange
        self.sessions: sessionmaker[Session] | None = None
        self.key_ring: KeyRing | None = None
        self._refused: dict[str, int] = {}  # credential id → generation whose token was refused

    def start(self, sessions: sessionmaker[Session], key_ring: KeyRing) -> None:
        self.sessions, self.key_ring = sessions, key_ring

    async def mint(self, credential) -> MintedToken:
        """A new access token from the credential's refresh token; `TokenError` otherwise."""
        cid, seen = credential.id, credential.grant
        if seen is None:
            return await self._from_secret(credential)
        if seen.status == "pending":
            raise pending(cid)
        if self._refused.get(cid, -1) >= seen.generation:
            raise needs_reconnect(cid)
        deadline = time.monotonic() + CLAIM_FOR.total_seconds() + 5
        while True:
            row = await self._store(read_grant, self.key_ring, cid)
            if row is None or row.status == "pending" or row.refresh_token is None:
                raise pending(cid)
            if row.status == "needs_reconnect":
                self._refused[cid] = row.generation
                raise needs_reconnect(cid)
            if await self._store(claim_refresh, cid, row.generation):
                return await self._refresh(credential, row)
            if time.monotonic() > deadline:
                raise TokenEndpointUnreachable(
                    f"Another gateway process's refresh of target credential {cid} did not finish"
                )
            await asyncio.sleep(POLL_S)  # another process refreshes: read the row again

    async def _refresh(self, credential, row: GrantRow) -> MintedToken:
        cid = credential.id
        try:
            request, body = oauth2.token_request(
                credential.settings, credential.secret, row.refresh_token
            )
            answer = oauth2.read_answer(cid, await self.exchange(cid, request, body))
        except CredentialRejected as exc:
            if exc.error_code != "invalid_grant":
                await self._quietly(release_claim, cid, row.generation, exc.message)
                raise
            reason = "The provider refused the refresh token (invalid_grant)"
            await self._quietly(mark_needs_reconnect, cid, row.generation, reason)
            self._refused[cid] = row.generation
            log.warning("target credential %s needs reconnecting: %s", cid, reason)
            raise needs_reconnect(cid) from exc
        except BaseException as exc:  # a failed exchange, or this task cancelled
            message = exc.message if isinstance(exc, TokenError) else type(exc).__name__
            await self._quietly(release_claim, cid, row.generation, message)
            raise
        expires = datetime.fromtimestamp(answer.token.expires_at, UTC)
        stored = await self._quietly(
            store_refresh, self.key_ring, cid, row.generation, answer.refresh_token, expires
        )
        if stored is False:
            log.warning("target credential %s: the grant moved on during a refresh", cid)
        return answer.token

    async def _from_secret(self, credential) -> MintedToken:
        """A refresh_token credential stored before grants had rows: its secret's token,
        which cannot be rotated (no row to keep a new one in)."""
        refresh_token = credential.secret.get("refreshToken")
        if not refresh_token:
            raise pending(credential.id)
        request, body = oauth2.token_request(credential.settings, credential.secret, refresh_token)
        response = await self.exchange(credential.id, request, body)
        return oauth2.read_answer(credential.id, response).token

    async def _store(self, function, *args):
        """`function(session, *args)` in a worker thread; `GrantStoreUnavailable` on failure."""
        if self.sessions is None:
            raise GrantStoreUnavailable("The gateway has not opened its store yet")

        def run():
            with self.sessions() as session:
                return function(session, *args)

        try:
            return await asyncio.to_thread(run)
        except (SQLAlchemyError, SecretDecryptionError, OSError) as exc:
            log.warning("credential grant store call %s failed: %r", function.__name__, exc)
            raise GrantStoreUnavailable(
                "The gateway could not read or update the credential's connection; try again"
            ) from exc

    async def _quietly(self, function, *args):
        """As `_store`, for writes after the exchange: a failure is logged, not raised."""
        try:
            return await self._store(function, *args)
        except GrantStoreUnavailable:
            return None
