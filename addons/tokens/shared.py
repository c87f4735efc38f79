"""Minted tokens shared through Redis (`PORTCULLIS_REDIS_URL`): sealed, and minted once.

A token is stored under `portcullis:token:{credentialId}`, sealed with the
master key ring (AES-GCM; the associated data binds it to that key), with the
credential's fingerprint inside so a changed credential never reuses an old
token, and it expires in Redis when the token does. `SET NX PX` on
`portcullis:token-lock:{credentialId}` elects the one process that mints;
the others poll the token's key until it appears (bounded). Redis being down
is not fatal here: the caller mints locally (tokens are no correctness limit).
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from addons.tokens.minted import MintedToken
from models.crypto import KeyRing, SealedSecret, SecretDecryptionError

TOKEN_KEY = "portcullis:token:"
LOCK_KEY = "portcullis:token-lock:"
# Deletes the lock only when it is still ours (it may have expired and been taken).
UNLOCK = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


class SharedUnavailable(Exception):
    """Redis could not be used; the caller mints in this process instead."""


class SharedTokens:
    """Tokens in Redis, sealed; every call raises `SharedUnavailable` on any Redis failure."""

    def __init__(self, url: str, key_ring: KeyRing, timeout_s: float):
        self.key_ring = key_ring
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    async def get(self, credential_id: str, fingerprint: str) -> MintedToken | None:
        raw = await self._call(self.client.get, TOKEN_KEY + credential_id)
        return None if raw is None else self._open(raw, credential_id, fingerprint)

    async def put(
        self, credential_id: str, fingerprint: str, token: MintedToken, now: float
    ) -> None:
        ttl_ms = math.floor((token.expires_at - now) * 1000)
        if ttl_ms < 1:
            return
        sealed = self.key_ring.seal(
            {"v": token.value, "e": token.expires_at, "l": token.lifetime, "f": fingerprint},
            _aad(credential_id),
        )
        stored = f"{sealed.key_id}:{base64.b64encode(sealed.ciphertext).decode()}"
        await self._call(self.client.set, TOKEN_KEY + credential_id, stored, px=ttl_ms)

    async def lock(self, credential_id: str, hold_ms: int) -> str | None:
        """A nonce when this process may mint (the lock is ours), None when another one does."""
        nonce = secrets.token_hex(16)
        won = await self._call(
            self.client.set, LOCK_KEY + credential_id, nonce, nx=True, px=hold_ms
        )
        return nonce if won else None

    async def locked(self, credential_id: str) -> bool:
        """Whether some process holds the mint lock for the credential."""
        return bool(await self._call(self.client.exists, LOCK_KEY + credential_id))

    async def unlock(self, credential_id: str, nonce: str) -> None:
        await self._call(self.client.eval, UNLOCK, 1, LOCK_KEY + credential_id, nonce)

    async def close(self) -> None:
        await self.client.aclose()

    def _open(self, raw: bytes, credential_id: str, fingerprint: str) -> MintedToken | None:
        key_id, _, encoded = raw.decode("ascii", "replace").partition(":")
        try:
            sealed = SealedSecret(key_id, base64.b64decode(encoded, validate=True))
            opened = self.key_ring.open(sealed, _aad(credential_id))
        except (binascii.Error, SecretDecryptionError, ValueError):
            return None  # another key ring, or not ours: mint a new one
        if opened.get("f") != fingerprint:
            return None
        return MintedToken(opened["v"], float(opened["e"]), float(opened["l"]))

    @staticmethod
    async def _call(command, *args, **kwargs):
        try:
            return await command(*args, **kwargs)
        except (RedisError, OSError, TimeoutError) as exc:
            raise SharedUnavailable(type(exc).__name__) from exc


def _aad(credential_id: str) -> str:
    return f"{credential_id}:{TOKEN_KEY}{credential_id}"
