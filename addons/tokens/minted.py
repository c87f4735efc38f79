"""A minted token, and the errors that end a mint (each one a gateway answer)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EARLY_REFRESH_MAX_S = 60.0
EARLY_REFRESH_SHARE = 0.1
# What a token may hold to be injected into a header or a query: visible ASCII only.
TOKEN_SHAPE = re.compile(r"[\x21-\x7e]{1,8192}")


@dataclass(frozen=True)
class MintedToken:
    """A token and when it expires (epoch seconds); `lifetime` as the endpoint granted it."""

    value: str = field(repr=False)
    expires_at: float
    lifetime: float

    @property
    def refresh_at(self) -> float:
        """When it is replaced: `min(60 s, 10 %)` of its lifetime before it expires."""
        return self.expires_at - min(EARLY_REFRESH_MAX_S, EARLY_REFRESH_SHARE * self.lifetime)

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at


class TokenError(Exception):
    """A mint failed: what the caller gets (status, machine code, message; never a secret)."""

    status = 502
    code = "TOKEN_ENDPOINT_UNREACHABLE"
    transient = True  # whether a later attempt may succeed without anyone changing anything

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TokenEndpointUnreachable(TokenError):
    """The token endpoint could not be reached, timed out, failed (5xx) or answered nonsense."""


class GrantStoreUnavailable(TokenError):
    """The store holding the refresh token could not be read or written."""

    status = 503
    code = "STORE_UNAVAILABLE"


class CredentialRejected(TokenError):
    """The token endpoint refused the credential (invalid_client, invalid_grant, ...).

    `error_code`: the OAuth2 `error` of the answer, when it gave one.
    """

    code = "TARGET_CREDENTIAL_REJECTED"
    transient = False

    def __init__(self, message: str, error_code: str | None = None):
        super().__init__(message)
        self.error_code = error_code


class PendingAuthorization(TokenError):
    """An authorization_code credential nobody has connected yet."""

    status = 403
    code = "CREDENTIAL_PENDING_AUTHORIZATION"
    transient = False


def usable_token(value: object) -> str | None:
    """`value` when it can be injected as it is (a string of visible ASCII), else None."""
    if isinstance(value, str) and TOKEN_SHAPE.fullmatch(value):
        return value
    return None
