"""A real OAuth2 authorization server for the tests, built on Authlib's server side.

Run it as `python -m tests.oauth_server --port N` (tests start it through
tests/oauth_support.py). Everything lives in memory, guarded by one lock.

- `POST /token`: grants client_credentials, authorization_code (PKCE S256 when the code was
  issued with a challenge) and refresh_token (rotating by default: a used refresh token is
  revoked and a new one issued). Client authentication client_secret_basic, client_secret_post
  or none (public clients). RFC 6749 answers and errors.
- `GET /authorize`: a consent page (buttons `#allow`, `#deny`); its form posts back and the
  answer redirects to `redirect_uri?code=…&state=…` (or `error=access_denied`).
- `/resource` and `/resource/…` (any method): a protected target. A valid token (as
  `Authorization: Bearer T`, bare `Authorization: T`, `X-Token: T`, or `?token=T` /
  `?access_token=T`) gets 200 `{"ok": true, "client_id", "token_id", "path", ...}`; anything
  else 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
- `/custom/token` (`{"data": {"token", "ttl"}}`), `/custom/token-header` (the token in
  `X-Issued-Token`, its TTL in `X-Token-TTL`), `/custom/token-jwt` (`{"data": {"token": JWT}}`,
  HS256 with `exp`): a "POST credentials, get a token" endpoint checking username/password
  (JSON or form body, query string, or HTTP Basic). Their tokens are valid at `/resource`.
- `GET /__stats`: counters (token requests per grant and client, the most concurrent token
  requests seen, custom token requests, resource hits) and the issued tokens' ids and expiries.
- `/__control/...`: register clients, set lifetimes, rotate a client secret, revoke tokens,
  slow the token endpoints down, list issued secrets (for leak tests), reset.
"""

from __future__ import annotations

import argparse
import base64
import html
import itertools
import secrets
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

if __package__ in (None, ""):  # `python tests/oauth_server.py`: make `models` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, MissingAuthorizationError, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, g, jsonify, request
from joserfc import jwt
from joserfc.jwk import OctKey

from models.json_limits import loads

TEST_USER = "test-user"
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
GRANT_TYPES = ("client_credentials", "authorization_code", "refresh_token")
SECRET_PARAMS = frozenset({"client_secret", "code", "code_verifier", "refresh_token", "password"})
DEFAULT_CUSTOM_USERNAME = "custom-user"
DEFAULT_CUSTOM_PASSWORD = "custom-pass-7f3a"
HISTORY_LIMIT = 2000  # request records kept for /__stats


class ControlError(ValueError):
    """A bad control request: answered 400 naming the field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


@dataclass
class User:
    """The one signed-in-less resource owner who consents."""

    user_id: str = TEST_USER

    def get_user_id(self) -> str:
        return self.user_id


@dataclass
class Client(ClientMixin):
    """A registered OAuth2 client."""

    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    grant_types: list[str]
    auth_method: str
    scope: str | None = None  # None: any requested scope is allowed
    access_lifetime: int | None = None  # None: the server's setting

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        if self.scope is None:
            return scope
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(
            client_secret.encode(), self.client_secret.encode()
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthCode:
    """An authorization code: single use, bound to client, redirect URI and PKCE challenge."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):
    """An issued access token (OAuth2 or customToken), with its refresh token if any."""

    token_id: str
    kind: str  # "oauth" or "custom"
    client_id: str
    grant_type: str
    access_token: str
    expires_at: float
    scope: str = ""
    audience: str | None = None
    refresh_token: str | None = None
    access_revoked: bool = False
    refresh_state: str = "valid"  # valid, rotated (used once), revoked (by control)
    issued_at: float = field(default_factory=time.time)

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - self.issued_at))

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.access_revoked

    def get_user(self) -> User:
        return User()

    def describe(self) -> dict:
        """What /__stats shows of a token: never the token itself."""
        return {
            "token_id": self.token_id,
            "kind": self.kind,
            "client_id": self.client_id,
            "grant_type": self.grant_type,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "scope": self.scope,
            "audience": self.audience,
            "has_refresh_token": self.refresh_token is not None,
            "refresh_state": self.refresh_state if self.refresh_token else None,
            "access_revoked": self.access_revoked,
        }


@dataclass
class Settings:
    """What the control API can change; `reset` goes back to these defaults."""

    access_lifetime: int = 2
    rotate_refresh_tokens: bool = True
    code_lifetime: int = 600
    custom_username: str = DEFAULT_CUSTOM_USERNAME
    custom_password: str = DEFAULT_CUSTOM_PASSWORD
    custom_ttl: int = 2
    slow_seconds: float = 0.0


class State:
    """All the server knows, behind one lock."""

    def __init__(self, defaults: Settings):
        self.lock = threading.Lock()
        self.defaults = defaults
        self.ids = itertools.count(1)
        self.jwt_key = OctKey.import_key(secrets.token_bytes(32))
        self.reset()

    def reset(self, counters_only: bool = False) -> None:
        with self.lock:
            if not counters_only:
                self.settings = Settings(**vars(self.defaults))
                self.clients: dict[str, Client] = {}
                self.codes: dict[str, AuthCode] = {}
                self.used_codes: dict[str, list[str]] = {}  # code → token ids issued from it
                self.by_access: dict[str, Token] = {}
                self.by_refresh: dict[str, Token] = {}
                self.tokens: list[Token] = []
                # Waiters of the old slow-down answer now; new requests wait on a fresh event.
                release = getattr(self, "release", None)
                if release is not None:
                    release.set()
                self.release = threading.Event()
            self.in_flight: Counter[str] = Counter()
            self.max_in_flight: Counter[str] = Counter()
            self.counts: Counter[str] = Counter()
            self.token_log: list[dict] = []
            self.custom_log: list[dict] = []
            self.authorize_log: list[dict] = []
            self.resource_log: list[dict] = []

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids)}"

    @contextmanager
    def in_flight_as(self, *keys: str):
        """Count a request in flight under each key, and the most seen at once."""
        with self.lock:
            for key in keys:
                self.in_flight[key] += 1
                self.max_in_flight[key] = max(self.max_in_flight[key], self.in_flight[key])
            release, delay = self.release, self.settings.slow_seconds
        try:
            if delay:
                release.wait(delay)  # the slow-down: a server-side wait, released by reset
            yield
        finally:
            with self.lock:
                for key in keys:
                    self.in_flight[key] -= 1

    def add_token(self, token: Token) -> None:
        """Keep a new token (the caller holds the lock)."""
        self.tokens.append(token)
        self.by_access[token.access_token] = token
        if token.refresh_token:
            self.by_refresh[token.refresh_token] = token

    def log(self, records: list[dict], record: dict) -> None:
        records.append(record)
        del records[:-HISTORY_LIMIT]

    def stats(self) -> dict:
        with self.lock:
            by = self.counts
            return {
                "token_requests": {
                    "total": by["token"],
                    "succeeded": by["token:ok"],
                    "by_grant": _sub(by, "grant:"),
                    "by_client": _sub(by, "client:"),
                    "errors": _sub(by, "error:"),
                },
                "max_concurrent_token_requests": self.max_in_flight["token"],
                "in_flight_token_requests": self.in_flight["token"],
                "max_concurrent_by_client": _sub(self.max_in_flight, "client:"),
                "refresh_reuse": by["refresh_reuse"],
                "custom_token_requests": {
                    "total": by["custom"],
                    "succeeded": by["custom:ok"],
                    "rejected": by["custom:rejected"],
                    "by_variant": _sub(by, "variant:"),
                    "max_concurrent": self.max_in_flight["custom"],
                    "in_flight": self.in_flight["custom"],
                },
                "authorize": {
                    "pages": by["authorize:page"],
                    "allowed": by["authorize:allow"],
                    "denied": by["authorize:deny"],
                },
                "resource": {"valid": by["resource:valid"], "rejected": by["resource:rejected"]},
                "tokens": [token.describe() for token in self.tokens],
                "token_log": list(self.token_log),
                "custom_log": list(self.custom_log),
                "authorize_log": list(self.authorize_log),
                "resource_log": list(self.resource_log),
                "settings": vars(self.settings).copy(),
            }

    def issued_secrets(self) -> dict:
        """Every secret value this server knows: for tests proving they leak nowhere."""
        with self.lock:
            return {
                "client_secrets": sorted(
                    c.client_secret for c in self.clients.values() if c.client_secret
                ),
                "access_tokens": [t.access_token for t in self.tokens if t.kind == "oauth"],
                "refresh_tokens": [t.refresh_token for t in self.tokens if t.refresh_token],
                "custom_tokens": [t.access_token for t in self.tokens if t.kind == "custom"],
                "custom_password": self.settings.custom_password,
            }


def _sub(counter: Counter, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in counter.items() if k.startswith(prefix) and v}


def _recorded_params(form) -> dict:
    """A token request's parameters, secrets replaced by a marker of their presence."""
    return {k: ("<present>" if k in SECRET_PARAMS else v) for k, v in form.items()}


def _basic_credentials() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return user, password


# ---- Authlib grants -------------------------------------------------------------------------


def build_grants(state: State):
    """The three grant classes, bound to `state`."""
    all_methods = list(AUTH_METHODS)

    class ClientCredentialsGrant(grants.ClientCredentialsGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = all_methods

    class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = all_methods

        def save_authorization_code(self, code: str, req) -> None:
            data = req.payload.data
            with state.lock:
                state.codes[code] = AuthCode(
                    code=code,
                    client_id=req.client.client_id,
                    redirect_uri=req.payload.redirect_uri or "",
                    scope=req.client.get_allowed_scope(req.payload.scope),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    expires_at=time.time() + state.settings.code_lifetime,
                )

        def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
            with state.lock:
                if code in state.used_codes:
                    # RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
                    for token in state.tokens:
                        if token.token_id in state.used_codes[code]:
                            token.access_revoked = True
                            token.refresh_state = "revoked"
                    state.counts["code_reuse"] += 1
                    return None
                item = state.codes.get(code)
                if item is None or item.client_id != client.client_id:
                    return None
                # Claimed at once (single use even when two exchanges race, or this one fails).
                del state.codes[code]
                state.used_codes[code] = []
            return item if time.time() < item.expires_at else None

        def delete_authorization_code(self, authorization_code: AuthCode) -> None:
            pass  # already claimed by query_authorization_code

        def authenticate_user(self, authorization_code: AuthCode) -> User:
            return User()

    class RefreshTokenGrant(grants.RefreshTokenGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = all_methods

        @property
        def INCLUDE_NEW_REFRESH_TOKEN(self) -> bool:  # Authlib's attribute, now per request
            return state.settings.rotate_refresh_tokens

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            with state.lock:
                token = state.by_refresh.get(refresh_token)
                if token is None:
                    return None
                g.refresh_token_id, g.refresh_token_state = token.token_id, token.refresh_state
                if token.refresh_state == "rotated":
                    state.counts["refresh_reuse"] += 1
                return token if token.refresh_state == "valid" else None

        def authenticate_user(self, refresh_token: Token) -> User:
            return User()

        def revoke_old_credential(self, refresh_token: Token) -> None:
            if state.settings.rotate_refresh_tokens:
                with state.lock:
                    refresh_token.refresh_state = "rotated"

    return ClientCredentialsGrant, AuthorizationCodeGrant, RefreshTokenGrant


class AnyPlaceResourceProtector(ResourceProtector):
    """Takes the token from `Authorization` (Bearer or bare), `X-Token`, or `?token=`."""

    def parse_request_authorization(self, req):
        validator = self.get_token_validator("bearer")
        for header in ("Authorization", "X-Token"):
            value = req.headers.get(header)
            if value:
                scheme, _, rest = value.partition(" ")
                return validator, (rest.strip() if scheme.lower() == "bearer" else value.strip())
        for name in ("token", "access_token"):
            value = request.args.get(name)
            if value:
                return validator, value
        raise MissingAuthorizationError(self._default_auth_type, self._default_realm)


def _token_via() -> str:
    if request.headers.get("Authorization"):
        return "authorization"
    if request.headers.get("X-Token"):
        return "x-token"
    return "query"


# ---- the app --------------------------------------------------------------------------------


def create_app(defaults: Settings | None = None) -> Flask:
    """The Flask app: the authorization server, the resource, customToken and control."""
    state = State(defaults or Settings())
    app = Flask(__name__)

    def query_client(client_id: str) -> Client | None:
        with state.lock:
            return state.clients.get(client_id)

    def save_token(token: dict, req) -> None:
        client = req.client
        lifetime = int(token.get("expires_in") or 0)
        code = getattr(req, "authorization_code", None)
        with state.lock:
            token_id = state.next_id("tok")
            if code is not None:
                state.used_codes.setdefault(code.code, []).append(token_id)
            state.add_token(
                Token(
                    token_id=token_id,
                    kind="oauth",
                    client_id=client.client_id,
                    grant_type=req.payload.grant_type,
                    access_token=token["access_token"],
                    expires_at=time.time() + lifetime,
                    scope=token.get("scope", ""),
                    audience=req.form.get("audience"),
                    refresh_token=token.get("refresh_token"),
                )
            )

    def expires_in(client: Client, grant_type: str) -> int:
        with state.lock:
            return client.access_lifetime or state.settings.access_lifetime

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=lambda **_: secrets.token_urlsafe(32),
            refresh_token_generator=lambda **_: secrets.token_urlsafe(40),
            expires_generator=expires_in,
        ),
    )
    client_credentials, authorization_code, refresh_token = build_grants(state)
    server.register_grant(client_credentials)
    server.register_grant(authorization_code, [CodeChallenge(required=True)])
    server.register_grant(refresh_token)

    class Validator(BearerTokenValidator):
        def authenticate_token(self, token_string: str) -> Token | None:
            with state.lock:
                return state.by_access.get(token_string)

    protector = AnyPlaceResourceProtector()
    protector.register_token_validator(Validator())

    @app.post("/token")
    def token_endpoint():
        grant_type = request.form.get("grant_type", "")
        basic = _basic_credentials()
        client_id = basic[0] if basic else request.form.get("client_id", "")
        with state.in_flight_as("token", f"client:{client_id}"):
            response = server.create_token_response()
        answer = response.get_json(silent=True) or {}
        record = {
            "grant_type": grant_type,
            "client_id": client_id,
            "auth": "basic" if basic else ("post" if "client_secret" in request.form else "none"),
            "params": _recorded_params(request.form),
            "status": response.status_code,
            "error": answer.get("error"),
            "refresh_token_id": g.get("refresh_token_id"),
            "refresh_token_state": g.get("refresh_token_state"),
            "at": time.time(),
        }
        with state.lock:
            state.counts.update(["token", f"grant:{grant_type}", f"client:{client_id}"])
            state.counts[f"error:{record['error']}" if record["error"] else "token:ok"] += 1
            if record["status"] == 200:
                record["token_id"] = state.by_access[answer["access_token"]].token_id
            state.log(state.token_log, record)
        return response

    @app.get("/authorize")
    def authorize_page():
        with state.lock:
            state.counts["authorize:page"] += 1
            state.log(state.authorize_log, dict(request.args))
        try:
            grant = server.get_consent_grant(end_user=User())
        except OAuth2Error as error:
            return server.handle_error_response(None, error)
        client = grant.client
        action = "/authorize?" + urlencode(list(request.args.items(multi=True)))
        scope = grant.request.payload.scope or ""
        return (
            "<!doctype html><html><head><title>Authorize</title></head><body>"
            f"<h1>Authorize {html.escape(client.client_id)}</h1>"
            f"<p id='scope'>Scope: {html.escape(scope)}</p>"
            f"<form method='post' action='{html.escape(action)}'>"
            "<button id='allow' type='submit' name='decision' value='allow'>Allow</button>"
            "<button id='deny' type='submit' name='decision' value='deny'>Deny</button>"
            "</form></body></html>"
        )

    @app.post("/authorize")
    def authorize_decision():
        allowed = request.form.get("decision") == "allow"
        with state.lock:
            state.counts["authorize:allow" if allowed else "authorize:deny"] += 1
        user = User() if allowed else None
        try:
            grant = server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            return server.handle_error_response(None, error)
        return server.create_authorization_response(grant_user=user, grant=grant)

    resource_methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

    @app.route("/resource", methods=resource_methods)
    @app.route("/resource/<path:rest>", methods=resource_methods)
    def resource(rest: str = ""):
        try:
            token = protector.acquire_token()
        except OAuth2Error as error:
            with state.lock:
                state.counts["resource:rejected"] += 1
                state.log(state.resource_log, {"path": request.path, "ok": False})
            body = dict(error.get_body())
            return jsonify(body), error.status_code, error.get_headers()
        answer = {
            "ok": True,
            "client_id": token.client_id,
            "token_id": token.token_id,
            "kind": token.kind,
            "scope": token.scope,
            "audience": token.audience,
            "path": request.path,
            "method": request.method,
            "via": _token_via(),
        }
        with state.lock:
            state.counts["resource:valid"] += 1
            state.log(
                state.resource_log, {"path": request.path, "ok": True, "token_id": token.token_id}
            )
        return jsonify(answer)

    def custom_token(variant: str):
        with state.in_flight_as("custom"):
            given = _custom_credentials()
            with state.lock:
                settings = state.settings
                valid = given is not None and (
                    secrets.compare_digest(given[0].encode(), settings.custom_username.encode())
                    and secrets.compare_digest(given[1].encode(), settings.custom_password.encode())
                )
                record = {
                    "variant": variant,
                    "method": request.method,
                    "content_type": request.content_type,
                    "headers": {
                        k.lower(): v
                        for k, v in request.headers.items()
                        if k.lower() != "authorization"
                    },
                    "ok": valid,
                    "at": time.time(),
                }
                state.counts.update(["custom", f"variant:{variant}"])
                if not valid:
                    state.counts["custom:rejected"] += 1
                    state.log(state.custom_log, record)
                    return jsonify(
                        error="invalid_credentials", message="username or password is wrong"
                    ), 401
                ttl = settings.custom_ttl
                now = time.time()
                value = secrets.token_urlsafe(32)
                if variant == "jwt":
                    claims = {"sub": given[0], "iat": int(now), "exp": int(now) + ttl}
                    value = jwt.encode({"alg": "HS256"}, claims, state.jwt_key)
                token = Token(
                    token_id=state.next_id("ctok"),
                    kind="custom",
                    client_id=given[0],
                    grant_type=f"custom:{variant}",
                    access_token=value,
                    expires_at=int(now) + ttl if variant == "jwt" else now + ttl,
                    issued_at=now,
                )
                state.add_token(token)
                state.counts["custom:ok"] += 1
                record["token_id"] = token.token_id
                state.log(state.custom_log, record)
        if variant == "header":
            headers = {"X-Issued-Token": value, "X-Token-TTL": str(ttl)}
            return jsonify(ok=True), 200, headers
        if variant == "jwt":
            return jsonify(data={"token": value})
        return jsonify(data={"token": value, "ttl": ttl})

    for path, variant in (("token", "body"), ("token-header", "header"), ("token-jwt", "jwt")):
        app.add_url_rule(
            f"/custom/{path}",
            f"custom_{variant}",
            lambda variant=variant: custom_token(variant),
            methods=["GET", "POST"],
        )

    @app.get("/__stats")
    def stats():
        return jsonify(state.stats())

    add_control_routes(app, state)
    return app


def _custom_credentials() -> tuple[str, str] | None:
    """username/password from a JSON or form body, the query string, or HTTP Basic."""
    basic = _basic_credentials()
    if basic:
        return basic
    source: dict = {}
    if request.is_json:
        try:
            parsed = loads(request.get_data())
        except ValueError:
            return None
        source = parsed if isinstance(parsed, dict) else {}
    elif request.form:
        source = request.form
    else:
        source = request.args
    username, password = source.get("username"), source.get("password")
    if isinstance(username, str) and isinstance(password, str):
        return username, password
    return None


# ---- the control API ------------------------------------------------------------------------


def _json_body() -> dict:
    raw = request.get_data()
    if not raw:
        return {}
    try:
        body = loads(raw)
    except ValueError as error:
        raise ControlError("body", f"not JSON: {error}") from None
    if not isinstance(body, dict):
        raise ControlError("body", "must be a JSON object")
    return body


def _int_field(body: dict, name: str, low: int, high: int) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ControlError(name, f"must be an integer from {low} to {high}")
    return value


def _client_from(body: dict) -> Client:
    client_id = body.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ControlError("client_id", "required string")
    secret = body.get("client_secret", secrets.token_urlsafe(24))
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise ControlError("client_secret", "a non-empty string, or null for a public client")
    default_method = "client_secret_basic" if secret else "none"
    method = body.get("token_endpoint_auth_method", default_method)
    if method not in AUTH_METHODS:
        raise ControlError("token_endpoint_auth_method", f"one of {', '.join(AUTH_METHODS)}")
    if (method == "none") != (secret is None):
        raise ControlError("token_endpoint_auth_method", "'none' exactly for public clients")
    default_grants = ["client_credentials"] if secret else ["authorization_code", "refresh_token"]
    grant_types = body.get("grant_types", default_grants)
    if not isinstance(grant_types, list) or not all(g in GRANT_TYPES for g in grant_types):
        raise ControlError("grant_types", f"a list of {', '.join(GRANT_TYPES)}")
    redirect_uris = body.get("redirect_uris", [])
    if not isinstance(redirect_uris, list) or not all(isinstance(u, str) for u in redirect_uris):
        raise ControlError("redirect_uris", "a list of strings")
    scope = body.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise ControlError("scope", "a space separated string, or null for any scope")
    lifetime = _int_field(body, "access_lifetime", 1, 86400) if "access_lifetime" in body else None
    return Client(client_id, secret, redirect_uris, grant_types, method, scope, lifetime)


def add_control_routes(app: Flask, state: State) -> None:
    """`/__control/...`: what tests change on the running server."""

    @app.errorhandler(ControlError)
    def control_error(error: ControlError):
        return jsonify(error="invalid_control_request", field=error.field, message=str(error)), 400

    def known_client(client_id: str) -> Client:
        client = state.clients.get(client_id)
        if client is None:
            raise ControlError("client_id", f"no client {client_id!r}")
        return client

    @app.post("/__control/clients")
    def register_client():
        client = _client_from(_json_body())
        with state.lock:
            state.clients[client.client_id] = client
        return jsonify(client_id=client.client_id, client_secret=client.client_secret), 201

    @app.post("/__control/clients/<client_id>/rotate-secret")
    def rotate_secret(client_id: str):
        body = _json_body()
        secret = body.get("client_secret", secrets.token_urlsafe(24))
        if not isinstance(secret, str) or not secret:
            raise ControlError("client_secret", "a non-empty string")
        with state.lock:
            client = known_client(client_id)
            if client.client_secret is None:
                raise ControlError("client_id", "a public client has no secret")
            client.client_secret = secret
        return jsonify(client_id=client_id, client_secret=secret)

    def revoke(client_id: str | None, token_id: str | None, what: str) -> Response:
        with state.lock:
            if client_id is not None:
                known_client(client_id)
            count = 0
            for token in state.tokens:
                if (client_id is None or token.client_id == client_id) and (
                    token_id is None or token.token_id == token_id
                ):
                    if what == "refresh" and token.refresh_token:
                        token.refresh_state, count = "revoked", count + 1
                    elif what == "access":
                        token.access_revoked, count = True, count + 1
        return jsonify(revoked=count)

    @app.post("/__control/clients/<client_id>/revoke-refresh-tokens")
    def revoke_client_refresh(client_id: str):
        return revoke(client_id, None, "refresh")

    @app.post("/__control/clients/<client_id>/revoke-access-tokens")
    def revoke_client_access(client_id: str):
        return revoke(client_id, None, "access")

    @app.post("/__control/tokens/<token_id>/revoke")
    def revoke_token(token_id: str):
        """Revokes the access token and the refresh token (if any) of one issued token id."""
        refresh = revoke(None, token_id, "refresh").get_json()["revoked"]
        access = revoke(None, token_id, "access").get_json()["revoked"]
        return jsonify(revoked=max(refresh, access))

    @app.post("/__control/config")
    def config():
        body = _json_body()
        known = set(vars(Settings())) - {"slow_seconds"}
        for name in body:
            if name not in known:
                raise ControlError(name, f"unknown setting; known: {', '.join(sorted(known))}")
        changes: dict = {}
        for name in ("access_lifetime", "custom_ttl"):
            if name in body:
                changes[name] = _int_field(body, name, 1, 86400)
        if "code_lifetime" in body:
            changes["code_lifetime"] = _int_field(body, "code_lifetime", 1, 3600)
        if "rotate_refresh_tokens" in body:
            if not isinstance(body["rotate_refresh_tokens"], bool):
                raise ControlError("rotate_refresh_tokens", "true or false")
            changes["rotate_refresh_tokens"] = body["rotate_refresh_tokens"]
        for name in ("custom_username", "custom_password"):
            if name in body:
                if not isinstance(body[name], str) or not body[name]:
                    raise ControlError(name, "a non-empty string")
                changes[name] = body[name]
        with state.lock:
            for name, value in changes.items():
                setattr(state.settings, name, value)
            return jsonify(vars(state.settings))

    @app.post("/__control/slow")
    def slow():
        body = _json_body()
        seconds = body.get("seconds", 0)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= 30
        ):
            raise ControlError("seconds", "a number from 0 to 30")
        with state.lock:
            state.settings.slow_seconds = float(seconds)
        return jsonify(slow_seconds=float(seconds))

    @app.post("/__control/release")
    def release():
        """Answer every request now held by the slow-down (later ones are held again)."""
        with state.lock:
            state.release.set()
            state.release = threading.Event()
        return jsonify(released=True)

    @app.post("/__control/reset")
    def reset():
        state.reset(counters_only=bool(_json_body().get("counters_only")))
        return jsonify(reset=True)

    @app.get("/__control/secrets")
    def issued_secrets():
        return jsonify(state.issued_secrets())

    @app.get("/__control/health")
    def health():
        return jsonify(ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--access-lifetime", type=int, default=Settings.access_lifetime)
    parser.add_argument("--custom-ttl", type=int, default=Settings.custom_ttl)
    parser.add_argument("--no-rotate", action="store_true", help="keep refresh tokens on use")
    parser.add_argument("--threads", type=int, default=256)  # > 100 held + control
    args = parser.parse_args(argv)
    if not args.host.startswith("127."):
        parser.error("--host must be a loopback address (127.0.0.0/8)")
    defaults = Settings(
        access_lifetime=args.access_lifetime,
        custom_ttl=args.custom_ttl,
        rotate_refresh_tokens=not args.no_rotate,
    )
    from waitress import serve

    serve(
        create_app(defaults),
        host=args.host,
        port=args.port,
        threads=args.threads,
        connection_limit=1000,
        backlog=1024,
        ident="portcullis-test-oauth",
        _quiet=True,
    )


if __name__ == "__main__":
    main()
