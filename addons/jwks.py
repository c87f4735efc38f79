"""JWKS keys for jwtVerify credentials: fetched through the gateway's one outbound path, cached.

The document comes from `Fetcher` (addons/fetch.py: SSRF guard, no
redirects, size cap, deadline) and is parsed with the nesting limit of
`models.json_limits`. A failure is `JwksUnavailable`, whose message is the
same whatever went wrong, so a caller learns nothing about the server behind
the URL; what went wrong is logged for the operator. Failures are remembered
for a few seconds, so callers cannot make the gateway fetch in a loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

import jwt

from addons.fetch import Fetcher, FetchFailed, checked_url, loggable
from models import json_limits

log = logging.getLogger("portcullis.jwks")
CACHE_SECONDS = 300
FAILURE_CACHE_SECONDS = 5
REFRESH_MIN_SECONDS = 1  # an unknown `kid` re-fetches at most this often
FETCH_TIMEOUT_S = 5
MAX_JWKS_BYTES = 256 * 1024


class JwksUnavailable(Exception):
    """The JWKS could not be fetched or is not a usable key set; `str()` is safe to show."""

    def __init__(self):
        super().__init__("The JWKS could not be fetched")


class JwksCache:
    def __init__(self, fetcher: Fetcher, ttl: float = CACHE_SECONDS):
        self._fetcher = fetcher
        self._ttl = ttl
        self.timeout_s: float = FETCH_TIMEOUT_S  # the whole fetch, connecting included
        self._sets: dict[str, tuple[float, jwt.PyJWKSet]] = {}
        self._failed: dict[str, float] = {}  # url → when fetching it last failed
        self._locks: dict[str, asyncio.Lock] = {}

    async def key_for(self, url: str, token: str):
        """The verification key for `token`'s `kid` (re-fetching once for an unknown kid).

        Raises `JwksUnavailable`, or `jwt.PyJWTError` for a token or kid that does not fit.
        """
        kid = jwt.get_unverified_header(token).get("kid")
        key_set = await self._get(url, refresh=False)
        key = self._find(key_set, kid)
        if key is None:
            key = self._find(await self._get(url, refresh=True), kid)
        if key is None:
            raise jwt.InvalidKeyError("no key in the JWKS matches the token's kid")
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
            fresh_for = REFRESH_MIN_SECONDS if refresh else self._ttl
            if cached and time.monotonic() - cached[0] < fresh_for:
                return cached[1]
            failed_at = self._failed.get(url)
            if failed_at is not None and time.monotonic() - failed_at < FAILURE_CACHE_SECONDS:
                raise JwksUnavailable()
            try:
                key_set = await self._fetch(url)
            except JwksUnavailable:
                self._failed[url] = time.monotonic()
                raise
            self._failed.pop(url, None)
            self._sets[url] = (time.monotonic(), key_set)
            return key_set

    async def _fetch(self, url: str) -> jwt.PyJWKSet:
        try:
            raw = await self._fetcher.fetch(url, MAX_JWKS_BYTES, self.timeout_s)
        except FetchFailed as exc:
            log.warning("JWKS fetch failed (%s): %s", exc.reason, exc.detail)
            raise JwksUnavailable() from exc
        try:
            return parse_jwks(raw)
        except ValueError as exc:
            where = loggable(checked_url(url))
            log.warning("JWKS from %s is unusable: %s", where, exc)
            raise JwksUnavailable() from exc


def parse_jwks(raw: bytes) -> jwt.PyJWKSet:
    """A key set from a JWKS document; ValueError (with a short, body-free reason) if unusable."""
    try:
        data = json_limits.loads(raw)
    except json_limits.JsonTooDeep as exc:
        raise ValueError(str(exc)) from None
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError('not a JSON object with a "keys" list')
    try:
        return jwt.PyJWKSet.from_dict(data)
    except (jwt.PyJWTError, TypeError, KeyError, AttributeError, ValueError):
        raise ValueError("no usable key in it") from None
