"""The admin's side of an OAuth2 Connect (authorization_code): Authlib builds the requests.

`start_authorization` makes the provider URL (state, PKCE S256 challenge);
`exchange_code` trades the callback's code for tokens through the SSRF-guarded
outbound call (`models/guarded_http.py`). Neither ever puts a secret (client
secret, code verifier, tokens) into an error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from models import guarded_http
from models.base import utcnow
from models.json_limits import loads
from models.ssrf_policy import Network

CALLBACK_PATH = "/ui/oauth/callback"
STATE_CHARS = 43  # ~256 bits from generate_token's 62-character alphabet
VERIFIER_CHARS = 64  # RFC 7636: 43..128 characters
MAX_PROVIDER_TEXT = 300
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


class ExchangeFailed(Exception):
    """The code exchange failed; `str()` is a message for the person connecting."""


@dataclass(frozen=True)
class AuthorizationStart:
    """A Connect's provider URL and the two values only the admin keeps."""

    url: str
    state: str
    code_verifier: str | None


@dataclass(frozen=True)
class Tokens:
    refresh_token: str
    access_expires_at: datetime | None


def callback_url(public_url: str | None, host_url: str) -> str:
    """The redirect_uri: `PORTCULLIS_PUBLIC_URL` (or the request's own origin) + the callback."""
    return (public_url or host_url).rstrip("/") + CALLBACK_PATH


def start_authorization(settings: dict, redirect_uri: str) -> AuthorizationStart:
    """The authorize URL for an oauth2 authorization_code credential's `settings`."""
    state = generate_token(STATE_CHARS)
    verifier = generate_token(VERIFIER_CHARS) if settings.get("usePkce", True) else None
    extra = {}
    if verifier is not None:
        extra = {
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    if settings.get("audience"):
        extra["audience"] = settings["audience"]
    url = prepare_grant_uri(
        settings["authorizeUrl"],
        settings["clientId"],
        "code",
        redirect_uri=redirect_uri,
        scope=settings.get("scope") or None,
        state=state,
        **extra,
    )
    return AuthorizationStart(url, state, verifier)


def _provider_text(value) -> str:
    """A provider-supplied string fit to show: printable, bounded."""
    text = UNPRINTABLE.sub(" ", str(value))
    return text[:MAX_PROVIDER_TEXT]


def provider_error(error, description=None) -> str:
    """`access_denied: The user said no` from an OAuth2 error answer's fields."""
    message = _provider_text(error)
    if description:
        message += f": {_provider_text(description)}"
    return message


def _token_body(settings: dict, code: str, redirect_uri: str, verifier: str | None) -> str:
    params = {"code": code}
    if verifier is not None:
        params["code_verifier"] = verifier
    params.update(settings.get("extraParams") or {})
    return prepare_token_request("authorization_code", redirect_uri=redirect_uri, **params)


def exchange_code(
    settings: dict,
    secret: dict,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
    allowed: tuple[Network, ...],
) -> Tokens:
    """Trade `code` at the token endpoint; raises ExchangeFailed (nothing is stored then)."""
    body = _token_body(settings, code, redirect_uri, code_verifier)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
        "Accept": "application/json",
    }
    auth = ClientAuth(
        settings["clientId"], secret.get("clientSecret"), settings.get("clientAuthMethod", "none")
    )
    url, headers, body = auth.prepare("POST", settings["tokenUrl"], headers, body)
    try:
        answer = guarded_http.request(
            "POST", url, headers=headers, body=body.encode("utf-8"), allowed=allowed
        )
    except guarded_http.OutboundError as exc:
        raise ExchangeFailed(f"The token endpoint could not be used: {exc}") from None
    try:
        document = loads(answer.body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ExchangeFailed(
            f"The token endpoint answered {answer.status} without a JSON object."
        ) from None
    if answer.status != 200 or "error" in document:
        error = document.get("error") or f"HTTP {answer.status}"
        raise ExchangeFailed(
            "The provider refused the code exchange: "
            + provider_error(error, document.get("error_description"))
        )
    refresh = document.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise ExchangeFailed(
            "The provider answered without a refresh token; ask it for offline access "
            "(for many providers a scope such as offline_access)."
        )
    expires_in = document.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        expires_at = utcnow() + timedelta(seconds=min(expires_in, 366 * 86400))
    return Tokens(refresh, expires_at)
