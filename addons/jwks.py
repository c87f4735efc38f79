"""JWKS keys for jwtVerify credentials, fetched in a worker thread and cached."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import requests

CACHE_SECONDS = 300
FETCH_TIMEOUT_S = 5
MAX_JWKS_BYTES = 256 * 1024


class JwksCache:
    def __init__(self, ttl: float = CACHE_SECONDS):
        self._ttl = ttl
        self._sets: dict[str, tuple[float, jwt.PyJWKSet]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def key_for(self, url: str, token: str):
        """The verification key for `token`'s `kid` (re-fetching once for an unknown kid)."""
        kid = jwt.get_unverified_header(token).get("kid")
        key_set = await self._get(url, refresh=False)
        key = self._find(key_set, kid)
        if key is None:
            key = self._find(await self._get(url, refresh=True), kid)
        if key is None:
            raise jwt.InvalidKeyError(f"no key with kid {kid!r} in the JWKS")
        return key

    @staticmethod
    def _find(key_set: jwt.PyJWKSet, kid: str | None):
        for jwk in key_set.keys:
            if kid is None or jwk.key_id == kid:
                return jwk.key
        return None

    async def _get(self, url: str, refresh: bool) -> jwt.PyJWKSet:
        cached = self._sets.get(url)
        if cached and not refresh and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            cached = self._sets.get(url)
            if cached and time.monotonic() - cached[0] < (1 if refresh else self._ttl):
                return cached[1]
            key_set = await asyncio.to_thread(fetch_jwks, url)
            self._sets[url] = (time.monotonic(), key_set)
            return key_set


def fetch_jwks(url: str) -> jwt.PyJWKSet:
    """Blocking: only ever called in a worker thread."""
    with requests.get(url, timeout=FETCH_TIMEOUT_S, stream=True) as response:
        response.raise_for_status()
        data = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
    if len(data) > MAX_JWKS_BYTES:
        raise jwt.PyJWKClientError("JWKS document too large")
    try:
        return jwt.PyJWKSet.from_dict(json.loads(data))
    except (ValueError, jwt.PyJWTError) as exc:
        raise jwt.PyJWKClientError(f"unusable JWKS: {exc}") from exc
