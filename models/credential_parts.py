"""What a target credential adds to a request: headers and query parameters.

Both planes use it: the data plane injects these parts toward the target, and
the admin's target Test presents a proxy credential the same way.
"""

from __future__ import annotations

import base64
import re
from typing import Protocol

AUTHORIZATION = "Authorization"
# Target credentials whose value is a token minted at run time (addons/tokens/).
MINTED_TYPES = frozenset({"oauth2", "customToken"})
# A customToken request's reference to one of its sealed fields: `{{fields.NAME}}`.
FIELD_REFERENCE = re.compile(r"\{\{\s*fields\.([^{}\s]+)\s*\}\}")


class UnsupportedInjection(Exception):
    """The target credential needs a token exchange that is not implemented yet."""


class CredentialParts(Protocol):
    """What `target_credential_parts` reads of a credential (a snapshot view or a namespace)."""

    auth_type: str
    settings: dict
    secret: dict


def target_credential_parts(
    credential: CredentialParts,
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Headers to set and query parameters to add for the target credential."""
    secret, settings = credential.secret, credential.settings
    match credential.auth_type:
        case "apiKey":
            name = settings.get("name", AUTHORIZATION)
            if settings.get("in") == "query":
                return {}, [(name, secret["value"])]
            return {name: secret["value"]}, []
        case "bearer" | "jwt":
            prefix = settings.get("prefix", "Bearer")
            value = f"{prefix} {secret['token']}" if prefix else secret["token"]
            return {settings.get("header", AUTHORIZATION): value}, []
        case "basicAuth":
            pair = f"{secret['username']}:{secret['password']}".encode()
            return {AUTHORIZATION: "Basic " + base64.b64encode(pair).decode()}, []
        case "custom":
            return dict(secret.get("headers", {})), list(secret.get("queryParams", {}).items())
        case "none":
            return {}, []
    if credential.auth_type in MINTED_TYPES:
        raise UnsupportedInjection(
            f"{credential.auth_type} target credentials inject a token minted per request"
        )
    raise UnsupportedInjection(f"{credential.auth_type} target credentials are not supported")


def mints_token(credential: CredentialParts) -> bool:
    """Whether the credential's value is a token minted at run time, not a stored secret."""
    return credential.auth_type in MINTED_TYPES


def minted_token_parts(
    credential: CredentialParts, token: str
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Headers and query parameters carrying a minted `token` (oauth2, customToken).

    A header `<header>: <prefix> <token>` (default `Authorization: Bearer ...`),
    or for a customToken with `injectIn: query`, the query parameter `queryParam`.
    """
    settings = credential.settings
    if settings.get("injectIn") == "query":
        return {}, [(settings["queryParam"], token)]
    prefix = settings.get("prefix", "Bearer")
    value = f"{prefix} {token}" if prefix else token
    return {settings.get("header") or AUTHORIZATION: value}, []
