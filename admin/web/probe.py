"""The target "Test" button: a real request through the gateway, as a caller would send it.

The admin presents the proxy credential of a proxy serving the target
(opened with the master key, never shown), so the request takes the whole
data-plane path: authentication, rules, injection, the request log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import jwt
import requests

from models import Credential
from models.credential_parts import UnsupportedInjection, target_credential_parts
from models.crypto import KeyRing

TIMEOUT_S = 15


@dataclass(frozen=True)
class ProbeResult:
    status: int | None
    milliseconds: float | None
    proxy_code: str | None
    error: str | None = None


def presentation(credential: Credential, key_ring: KeyRing) -> tuple[dict, dict]:
    """Headers and query parameters that present `credential` to the gateway."""
    secret = credential.open_secret(key_ring)
    settings = credential.settings or {}
    if credential.auth_type == "jwtVerify":
        if "secret" not in secret:
            raise UnsupportedInjection("a JWKS-verified credential's tokens come from its issuer")
        now = datetime.now(UTC)
        claims = {"iat": now, "exp": now + timedelta(minutes=1), "sub": "portcullis-test"}
        if settings.get("issuer"):
            claims["iss"] = settings["issuer"]
        if settings.get("audience"):
            claims["aud"] = settings["audience"]
        algorithm = (settings.get("algorithms") or ["HS256"])[0]
        return {"Authorization": "Bearer " + jwt.encode(claims, secret["secret"], algorithm)}, {}
    view = SimpleNamespace(auth_type=credential.auth_type, settings=settings, secret=secret)
    headers, query = target_credential_parts(view)
    return headers, dict(query)


def probe(gateway_url: str, proxy_id: str, path: str, credential: Credential, key_ring: KeyRing):
    try:
        headers, query = presentation(credential, key_ring)
    except UnsupportedInjection as exc:
        return ProbeResult(None, None, None, f"Cannot test with this credential: {exc}")
    url = f"{gateway_url}/api/{proxy_id}/{path.lstrip('/')}"
    started = time.perf_counter()
    try:
        response = requests.get(url, headers=headers, params=query, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        return ProbeResult(None, None, None, f"The gateway at {gateway_url} did not answer: {exc}")
    elapsed = (time.perf_counter() - started) * 1000
    return ProbeResult(
        response.status_code, round(elapsed, 1), response.headers.get("requestrocket-proxy-code")
    )
