"""Enumerations of the domain: credential and auth types, rule effects, membership roles."""

from __future__ import annotations

from enum import StrEnum


class CredentialType(StrEnum):
    PROXY = "proxy"  # how callers authenticate to the gateway
    TARGET = "target"  # what the gateway injects toward the target API


class AuthType(StrEnum):
    API_KEY = "apiKey"
    BEARER = "bearer"
    BASIC_AUTH = "basicAuth"
    JWT = "jwt"
    JWT_VERIFY = "jwtVerify"
    OAUTH2 = "oauth2"
    CUSTOM_TOKEN = "customToken"
    CUSTOM = "custom"
    NONE = "none"


# Blog vocabulary (INDEX.md §3) accepted on input, stored and returned canonically.
AUTH_TYPE_ALIASES = {"key": AuthType.API_KEY, "basic": AuthType.BASIC_AUTH}

ALLOWED_AUTH_TYPES: dict[CredentialType, frozenset[AuthType]] = {
    CredentialType.PROXY: frozenset(
        {
            AuthType.API_KEY,
            AuthType.BEARER,
            AuthType.BASIC_AUTH,
            AuthType.JWT,
            AuthType.JWT_VERIFY,
        }
    ),
    CredentialType.TARGET: frozenset(
        {
            AuthType.API_KEY,
            AuthType.BEARER,
            AuthType.BASIC_AUTH,
            AuthType.JWT,
            AuthType.OAUTH2,
            AuthType.CUSTOM_TOKEN,
            AuthType.CUSTOM,
            AuthType.NONE,
        }
    ),
}


def canonical_auth_type(value: str) -> AuthType:
    """The canonical auth type for `value` (accepting aliases); ValueError if unknown."""
    if value in AUTH_TYPE_ALIASES:
        return AUTH_TYPE_ALIASES[value]
    return AuthType(value)


class RuleEffect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class Role(StrEnum):
    """Membership roles, from least to most privileged."""

    USER = "user"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def level(self) -> int:
        return ROLE_LEVELS[self]


ROLE_LEVELS = {Role.USER: 1, Role.ADMIN: 2, Role.OWNER: 3}
