"""Checking the caller's proxy credential. Pure functions: no I/O, constant-time comparisons.

The credential comes from the `Authorization` header or an `Authorization`
query parameter; an apiKey credential may also name its own header or
query parameter. jwtVerify keys come from a resolver, so JWKS fetching can
happen off the event loop.

Whatever bytes a caller sends are compared as bytes. mitmproxy decodes header
values (and the query string) with UTF-8 and `surrogateescape`, so bytes that
are not UTF-8 arrive as lone surrogates; `as_bytes` turns them back into the
bytes sent. Such a value never equals a stored secret: it answers 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl

import jwt

from addons.snapshot import CredentialView
from models.credential_parts import AUTHORIZATION
from models.json_limits import MAX_DEPTH, nesting_depth_exceeds


@dataclass(frozen=True)
class Presented:
    """What the caller sent that may carry a credential."""

    headers: Mapping[str, str]  # case-insensitive lookups expected (mitmproxy Headers)
    query: Mapping[str, str]

    def authorization(self) -> str | None:
        return self.headers.get(AUTHORIZATION) or self.query.get(AUTHORIZATION)


class QueryOnce(Mapping[str, str]):
    """A raw query string as a mapping (first value wins), parsed on first use only."""

    def __init__(self, raw: str):
        self._raw = raw
        self._items: dict[str, str] | None = None

    def _parsed(self) -> dict[str, str]:
        if self._items is None:
            self._items = {}
            pairs = parse_qsl(self._raw, keep_blank_values=True, errors="surrogateescape")
            for name, value in pairs:
                self._items.setdefault(name, value)
        return self._items

    def __getitem__(self, name: str) -> str:
        return self._parsed()[name]

    def get(self, name: str, default=None):
        return self._parsed().get(name, default) if self._raw else default

    def __iter__(self):
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())


class AuthFailure(Exception):
    """Authentication failed; `message` is safe to show the caller."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.message = message
        self.reason = reason  # missing | invalid | inactive | expired


def as_bytes(text: str) -> bytes:
    """`text` as the bytes the caller sent (the inverse of mitmproxy's decoding)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # A surrogate mitmproxy cannot have produced; any fixed mapping keeps `_same` sound.
        return text.encode("utf-8", "surrogatepass")


def _same(presented: str | bytes, expected: str) -> bool:
    if isinstance(presented, str):
        presented = as_bytes(presented)
    return hmac.compare_digest(presented, expected.encode("utf-8"))


def _strip_scheme(value: str, scheme: str) -> str | None:
    if not scheme:
        return value
    head, _, rest = value.partition(" ")
    return rest.strip() if head.lower() == scheme.lower() and rest.strip() else None


def _api_key(credential: CredentialView, presented: Presented) -> str | None:
    settings = credential.settings
    name = settings.get("name", AUTHORIZATION)
    source = presented.query if settings.get("in") == "query" else presented.headers
    return source.get(name) or presented.authorization()


def check_api_key(credential: CredentialView, presented: Presented) -> None:
    value = _api_key(credential, presented)
    if value is None:
        raise AuthFailure("Missing proxy credential", "missing")
    if not _same(value, credential.secret["value"]):
        raise AuthFailure("Invalid proxy credential", "invalid")


def check_token(credential: CredentialView, presented: Presented) -> None:
    """bearer and jwt: `<prefix> <token>` in the configured header (default Authorization)."""
    header = credential.settings.get("header", AUTHORIZATION)
    raw = presented.headers.get(header) or presented.authorization()
    if raw is None:
        raise AuthFailure("Missing proxy credential", "missing")
    token = _strip_scheme(raw.strip(), credential.settings.get("prefix", "Bearer"))
    if token is None or not _same(token, credential.secret["token"]):
        raise AuthFailure("Invalid proxy credential", "invalid")


def check_basic(credential: CredentialView, presented: Presented) -> None:
    raw = presented.authorization()
    if raw is None:
        raise AuthFailure("Missing proxy credential", "missing")
    encoded = _strip_scheme(raw.strip(), "Basic")
    try:
        decoded = base64.b64decode(as_bytes(encoded or ""), validate=True)
    except binascii.Error:
        decoded = b""
    username, sep, password = decoded.partition(b":")
    expected = credential.secret
    # Both comparisons always run, so timing does not tell which part was wrong.
    user_ok = _same(username, expected["username"])
    password_ok = _same(password, expected["password"])
    if not (sep and user_ok and password_ok):
        raise AuthFailure("Invalid proxy credential", "invalid")


def jwt_token(presented: Presented) -> str:
    """The caller's JWT (`Authorization: [Bearer ]<token>`, header or query)."""
    raw = presented.authorization()
    if raw is None:
        raise AuthFailure("Missing proxy credential", "missing")
    token = _strip_scheme(raw.strip(), "Bearer") or raw.strip()
    if not token.isascii():
        # A JWT is base64url and dots; PyJWT would fail encoding the surrogates of raw bytes.
        raise AuthFailure("Invalid proxy credential token: not a JWT", "invalid")
    if any(_nests_too_deeply(segment) for segment in token.split(".")[:2]):
        raise AuthFailure(
            f"Invalid proxy credential token: its JSON nests deeper than {MAX_DEPTH} levels",
            "invalid",
        )
    return token


def _nests_too_deeply(segment: str) -> bool:
    """Whether a JWT segment decodes to JSON nested past the limit (PyJWT would recurse)."""
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return False  # not base64url: PyJWT refuses it with its own message
    return nesting_depth_exceeds(decoded, MAX_DEPTH)


KeyResolver = Callable[[CredentialView, str], object]


def hmac_key(credential: CredentialView, _token: str) -> object:
    return credential.secret["secret"]


def check_jwt_verify(
    credential: CredentialView, presented: Presented, resolve_key: KeyResolver = hmac_key
) -> dict:
    """Verify signature, `exp` (required), `nbf`, `iss`, `aud` and the algorithm; return claims."""
    token = jwt_token(presented)
    settings = credential.settings
    try:
        key = resolve_key(credential, token)
        return jwt.decode(
            token,
            key=key,
            algorithms=settings["algorithms"],
            issuer=settings.get("issuer"),
            audience=settings.get("audience"),
            leeway=settings.get("leewaySeconds", 0),
            options={"require": ["exp"], "verify_aud": settings.get("audience") is not None},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthFailure("Proxy credential token has expired", "expired") from exc
    except jwt.PyJWTError as exc:
        raise AuthFailure(f"Invalid proxy credential token: {exc}", "invalid") from exc


CHECKS = {
    "apiKey": check_api_key,
    "bearer": check_token,
    "jwt": check_token,
    "basicAuth": check_basic,
}


def authenticate(
    credential: CredentialView,
    presented: Presented,
    now: datetime,
    resolve_key: KeyResolver = hmac_key,
) -> None:
    """Raise AuthFailure unless `presented` carries `credential`, which is active and current."""
    if not credential.active:
        raise AuthFailure("Proxy credential is inactive", "inactive")
    if credential.expires_at is not None and credential.expires_at <= now:
        raise AuthFailure("Proxy credential has expired", "expired")
    if credential.auth_type == "jwtVerify":
        check_jwt_verify(credential, presented, resolve_key)
        return
    check = CHECKS.get(credential.auth_type)
    if check is None:
        raise AuthFailure("Proxy credential type cannot authenticate callers", "invalid")
    check(credential, presented)
