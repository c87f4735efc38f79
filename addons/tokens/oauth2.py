"""OAuth2 token requests (client_credentials, refresh_token) and their answers, with Authlib.

Pure: building a request and reading an answer; the HTTP call is the source's.
Authlib prepares the form body (`prepare_token_request`) and the client
authentication (`ClientAuth`: `client_secret_basic`, `client_secret_post`, `none`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from addons.tokens.minted import (
    CredentialRejected,
    MintedToken,
    TokenEndpointUnreachable,
    usable_token,
)
from addons.upstream import UpstreamRequest, UpstreamResponse
from models.json_limits import loads

DEFAULT_LIFETIME_S = 3600  # when the answer gives no expires_in
FORM = "application/x-www-form-urlencoded"
# An OAuth2 error code as RFC 6749 §5.2 allows it; anything else is not repeated to callers.
ERROR_CODE = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}")


@dataclass(frozen=True)
class TokenAnswer:
    """A token endpoint's successful answer: the access token, and a rotated refresh token."""

    token: MintedToken
    refresh_token: str | None = None


def token_request(
    settings: dict, secret: dict, refresh_token: str | None = None
) -> tuple[UpstreamRequest, bytes]:
    """The POST to `settings["tokenUrl"]`: client credentials, or a refresh with `refresh_token`."""
    params: dict[str, str] = {}
    if settings.get("scope"):
        params["scope"] = settings["scope"]
    if settings.get("audience"):
        params["audience"] = settings["audience"]
    for name, value in (settings.get("extraParams") or {}).items():
        params.setdefault(name, value)
    if refresh_token is None:
        body = prepare_token_request("client_credentials", **params)
    else:
        body = prepare_token_request("refresh_token", refresh_token=refresh_token, **params)
    client_secret = secret.get("clientSecret")
    method = settings.get("clientAuthMethod") or (
        "client_secret_basic" if client_secret else "none"
    )
    headers = {"Content-Type": FORM, "Accept": "application/json"}
    auth = ClientAuth(settings["clientId"], client_secret, method)
    url, headers, body = auth.prepare("POST", settings["tokenUrl"], headers, body)
    return UpstreamRequest("POST", url, tuple(headers.items())), body.encode()


def read_answer(
    credential_id: str, response: UpstreamResponse, now: float | None = None
) -> TokenAnswer:
    """The token in a token endpoint's answer, or the error it means for the caller."""
    document = _json(response.body)
    if response.status >= 500 or (response.status < 400 and response.status != 200):
        raise TokenEndpointUnreachable(
            f"The token endpoint of credential {credential_id} answered {response.status}"
        )
    if response.status >= 400:
        error = document.get("error") if isinstance(document, dict) else None
        code = error if isinstance(error, str) and ERROR_CODE.fullmatch(error) else None
        if response.status in (401, 403) or (isinstance(document, dict) and "error" in document):
            raise CredentialRejected(
                f"The token endpoint refused target credential {credential_id}"
                + (f" ({code})" if code else f" (status {response.status})"),
                code,
            )
        raise TokenEndpointUnreachable(
            f"The token endpoint of credential {credential_id} answered {response.status}"
        )
    if not isinstance(document, dict):
        raise _unreadable(credential_id)
    value = usable_token(document.get("access_token"))
    if value is None:
        raise _unreadable(credential_id)
    lifetime = _lifetime(document.get("expires_in"))
    now = time.time() if now is None else now
    refresh = document.get("refresh_token")
    return TokenAnswer(
        MintedToken(value, now + lifetime, lifetime),
        refresh if isinstance(refresh, str) and refresh else None,
    )


def _json(body: bytes):
    try:
        return loads(body)
    except ValueError:
        return None


def _lifetime(value) -> float:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(min(value, 366 * 86400))
    return float(DEFAULT_LIFETIME_S)


def _unreadable(credential_id: str) -> TokenEndpointUnreachable:
    return TokenEndpointUnreachable(
        f"The token endpoint of credential {credential_id} gave no usable access token"
    )
