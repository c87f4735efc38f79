"""User tokens: generated with enough entropy that a plain SHA-256 is a safe stored form."""

from __future__ import annotations

import hashlib
import secrets

USER_TOKEN_PREFIX = "u-"


def generate_user_token() -> str:
    """A new `u-` token (256 bits of randomness)."""
    return USER_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token. Tokens are random, so no salt or stretching is needed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_hint(token: str) -> str:
    """A short, non-secret reminder of which token this is (`u-AbCd…`)."""
    return token[:6] + "…"
