"""customToken: the token request a credential describes, and where its answer holds the token.

Pure: building the request (with `{{fields.NAME}}` references filled from the
sealed fields) and reading the answer (a JSON path or a header; the lifetime
fixed, from a JSON path, or the JWT's `exp`). The HTTP call is the source's.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from urllib.parse import quote_plus, urlencode

from addons.tokens.minted import (
    CredentialRejected,
    MintedToken,
    TokenEndpointUnreachable,
    usable_token,
)
from addons.upstream import UpstreamRequest, UpstreamResponse
from models.credential_parts import FIELD_REFERENCE
from models.json_limits import loads
from models.json_paths import JsonPathError, parse_path, select

DEFAULT_TTL_S = 3600
MAX_TTL_S = 366 * 86400
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


class UnknownField(CredentialRejected):
    """The request references a field the credential does not have (an old or broken record)."""


def fill(text: str, fields: dict, credential_id: str, escape: Callable[[str], str] = str) -> str:
    """`text` with each `{{fields.NAME}}` replaced by that sealed field's value, `escape`d
    for where it goes (a form or JSON text written by hand)."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if not isinstance(fields.get(name), str):
            raise UnknownField(
                f"Target credential {credential_id} references an unknown field {name!r}"
            )
        return escape(fields[name])

    return FIELD_REFERENCE.sub(value, text)


def _json_escaped(value: str) -> str:
    return json.dumps(value)[1:-1]


def _filled(value, fields: dict, credential_id: str):
    if isinstance(value, str):
        return fill(value, fields, credential_id)
    if isinstance(value, dict):
        return {k: _filled(v, fields, credential_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, fields, credential_id) for v in value]
    return value


def token_request(
    credential_id: str, settings: dict, secret: dict
) -> tuple[UpstreamRequest, bytes]:
    """The request to `settings["tokenUrl"]` as the credential describes it."""
    fields = secret.get("fields") or {}
    method = settings.get("method") or "POST"
    headers = {
        name: fill(value, fields, credential_id)
        for name, value in (secret.get("headers") or {}).items()
    }
    raw = secret.get("body")
    form = settings.get("bodyFormat") == "form"
    if isinstance(raw, dict):
        body = _filled(raw, fields, credential_id)
        encoded = urlencode({k: _text(v) for k, v in body.items()}) if form else json.dumps(body)
        content_type = FORM_TYPE if form else JSON_TYPE
    elif isinstance(raw, str):
        as_json = settings.get("bodyFormat") == "json" or raw.lstrip()[:1] in ("{", "[")
        escape = _json_escaped if as_json else quote_plus
        encoded = fill(raw, fields, credential_id, escape)
        content_type = JSON_TYPE if as_json else FORM_TYPE
    else:
        body, encoded, content_type = None, "", None
    url = settings["tokenUrl"]
    if method == "GET":  # no body: a form (or a flat object) goes in the query
        query = urlencode({k: _text(v) for k, v in body.items()}) if isinstance(raw, dict) else ""
        query = encoded if content_type == FORM_TYPE else query
        if query:
            url += ("&" if "?" in url else "?") + query
        encoded, content_type = "", None
    if content_type and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = content_type
    headers.setdefault("Accept", f"{JSON_TYPE}, */*")
    return UpstreamRequest(method, url, tuple(headers.items())), encoded.encode()


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def read_answer(
    credential_id: str, settings: dict, response: UpstreamResponse, now: float | None = None
) -> MintedToken:
    """The token and its lifetime in the token endpoint's answer, or the caller's error."""
    if response.status >= 500 or 300 <= response.status < 400:
        raise TokenEndpointUnreachable(
            f"The token endpoint of credential {credential_id} answered {response.status}"
        )
    if response.status >= 400:
        raise CredentialRejected(
            f"The token endpoint refused target credential {credential_id} "
            f"(status {response.status})"
        )
    document = None
    if settings.get("tokenLocation") == "header":
        wanted = str(settings.get("tokenHeader") or "").lower().encode("latin-1", "replace")
        raw = next((v for n, v in response.headers if n.lower() == wanted), None)
        value = usable_token(raw.decode("latin-1").strip()) if raw is not None else None
    else:
        document = _json(response.body)
        value = usable_token(_at(document, settings.get("tokenPath") or "access_token"))
    if value is None:
        raise _unreadable(credential_id, "no usable token")
    lifetime = _lifetime(credential_id, settings, value, response.body, document)
    now = time.time() if now is None else now
    return MintedToken(value, now + lifetime, lifetime)


def _lifetime(credential_id: str, settings: dict, token: str, body: bytes, document) -> float:
    match settings.get("ttlFrom") or "fixed":
        case "path":
            document = _json(body) if document is None else document
            seconds = _at(document, settings.get("ttlPath") or "")
            if isinstance(seconds, str) and seconds.strip().isdigit():
                seconds = int(seconds)
        case "jwtExp":
            exp = _jwt_claims(token).get("exp")
            seconds = exp - time.time() if _number(exp) else None
        case _:
            seconds = settings.get("ttlSeconds") or DEFAULT_TTL_S
    if not _number(seconds) or seconds <= 0:
        raise _unreadable(credential_id, "no usable lifetime")
    return float(min(seconds, MAX_TTL_S))


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _jwt_claims(token: str) -> dict:
    """The JWT's payload, unverified: the target checks its own tokens; only `exp` is read."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _json(body: bytes):
    try:
        return loads(body)
    except ValueError:
        return None


def _at(document, path_text):
    try:
        found = select(document, parse_path(path_text))
    except JsonPathError:
        return None
    return found[0] if len(found) == 1 else None


def _unreadable(credential_id: str, what: str) -> TokenEndpointUnreachable:
    return TokenEndpointUnreachable(f"The token endpoint of credential {credential_id} gave {what}")
