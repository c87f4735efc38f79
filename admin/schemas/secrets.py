"""`credentialSecret` validation, one schema per auth type.

Each schema accepts the documented shape plus the aliases seen in the hosted
product's examples, and splits the result into the *secret* part (sealed with
AES-256-GCM, never returned) and the non-secret *settings* (header names,
prefixes, JWKS URL, ...) that the API may show. Messages never echo values.
"""

from __future__ import annotations

import re

from marshmallow import (
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from admin.schemas.common import (
    ApiSchema,
    string_map,
    validate_header_name,
    validate_header_value,
    validate_no_control_chars,
)
from models.credential_parts import FIELD_REFERENCE
from models.enums import AuthType
from models.json_paths import WILDCARD, JsonPathError, parse_path

HTTP_URL = validate.URL(schemes={"http", "https"}, require_tld=False)
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
PUBLIC_KEY_ALGORITHMS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512", "EdDSA"),
)
MIN_HMAC_SECRET_BYTES = 32

secret_string = fields.String  # readability: a field whose value is sealed


def _header_name(**kwargs) -> fields.String:
    return fields.String(validate=validate_header_name, **kwargs)


class SecretSchema(ApiSchema):
    """Produces `{"secret": {...}, "settings": {...}}` from a valid `credentialSecret`."""


class ApiKeySecret(SecretSchema):
    """`{value, header | query}`; also the seed's `{key, value, addToHeader}` and `{key}` alone."""

    value = secret_string(validate=[validate.Length(min=1), validate_header_value])
    key = fields.String(validate=[validate.Length(min=1), validate_no_control_chars])
    header = _header_name()
    query = fields.String(validate=[validate.Length(min=1), validate_no_control_chars])
    addToHeader = fields.Boolean()

    @pre_load
    def _blog_form(self, data, **kwargs):
        # `{"key": "rr_live_..."}` (blog): the key *is* the value.
        if (
            isinstance(data, dict)
            and "key" in data
            and "value" not in data
            and set(data) <= {"key", "addToHeader"}
        ):
            data = {**data, "value": data["key"]}
            del data["key"]
        return data

    @validates_schema
    def _one_name(self, data, **kwargs):
        if "value" not in data:
            raise ValidationError("Missing data for required field.", "value")
        if "header" in data and "query" in data:
            raise ValidationError("Give either header or query, not both.", "query")
        if "key" in data and ("header" in data or "query" in data):
            raise ValidationError("key already names the parameter; drop header/query.", "key")
        if data.get("addToHeader") is True and "query" in data:
            raise ValidationError("addToHeader is true but a query name was given.", "query")
        if data.get("addToHeader") is False and "header" in data:
            raise ValidationError("addToHeader is false but a header name was given.", "header")
        if data.get("addToHeader") is False and "query" not in data and "key" not in data:
            raise ValidationError("Name the query parameter (query or key).", "query")

    @post_load
    def _split(self, data, **kwargs):
        in_query = "query" in data or data.get("addToHeader") is False
        name = data.get("query") or data.get("header") or data.get("key") or "Authorization"
        if not in_query:
            try:
                validate_header_name(name)
            except ValidationError as exc:
                raise ValidationError(exc.messages, "key") from exc
        return {
            "secret": {"value": data["value"]},
            "settings": {"in": "query" if in_query else "header", "name": name},
        }


class TokenSecret(SecretSchema):
    """A token sent as `<header>: <prefix> <token>` (bearer and jwt)."""

    token = secret_string(required=True, validate=[validate.Length(min=1), validate_header_value])
    prefix = fields.String(validate=[validate.Length(max=40), validate_header_value])
    header = _header_name()
    addToHeader = fields.Boolean(validate=validate.Equal(True, error="Tokens go in a header."))

    default_prefix = "Bearer"

    @post_load
    def _split(self, data, **kwargs):
        return {
            "secret": {"token": data["token"]},
            "settings": {
                "header": data.get("header", "Authorization"),
                "prefix": data.get("prefix", self.default_prefix).strip(),
            },
        }


class BearerSecret(TokenSecret):
    pass


class JwtSecret(TokenSecret):
    @validates_schema
    def _looks_like_jwt(self, data, **kwargs):
        if "token" in data and not JWT_SHAPE.fullmatch(data["token"]):
            raise ValidationError("Not a JWT (three base64url segments).", "token")


class BasicAuthSecret(SecretSchema):
    username = secret_string(
        required=True, validate=[validate.Length(min=1), validate_header_value]
    )
    password = secret_string(required=True, validate=validate_header_value)

    @validates_schema
    def _no_colon(self, data, **kwargs):
        if ":" in data.get("username", ""):
            raise ValidationError("A Basic auth username cannot contain ':'.", "username")

    @post_load
    def _split(self, data, **kwargs):
        return {
            "secret": {"username": data["username"], "password": data["password"]},
            "settings": {},
        }


class JwtVerifySecret(SecretSchema):
    """Verify callers' JWTs with a JWKS URL (public keys) or a shared HMAC secret."""

    jwksUrl = fields.String(validate=HTTP_URL)
    secret = secret_string(validate=validate.Length(min=MIN_HMAC_SECRET_BYTES))
    issuer = fields.String(validate=validate.Length(min=1))
    audience = fields.Raw()
    algorithms = fields.List(
        fields.String(validate=validate.OneOf(HMAC_ALGORITHMS + PUBLIC_KEY_ALGORITHMS)),
        validate=validate.Length(min=1),
    )
    leewaySeconds = fields.Integer(validate=validate.Range(min=0, max=300))

    @validates_schema
    def _key_source(self, data, **kwargs):
        if ("jwksUrl" in data) == ("secret" in data):
            raise ValidationError("Give exactly one of jwksUrl or secret.", "jwksUrl")
        allowed = HMAC_ALGORITHMS if "secret" in data else PUBLIC_KEY_ALGORITHMS
        wrong = [a for a in data.get("algorithms", []) if a not in allowed]
        if wrong:
            source = "a shared secret" if "secret" in data else "a JWKS URL"
            raise ValidationError(f"{', '.join(wrong)} cannot be used with {source}.", "algorithms")
        audience = data.get("audience")
        if audience is not None and not (
            (isinstance(audience, str) and audience)
            or (
                isinstance(audience, list)
                and audience
                and all(isinstance(a, str) for a in audience)
            )
        ):
            raise ValidationError("Must be a string or a list of strings.", "audience")

    @post_load
    def _split(self, data, **kwargs):
        default_algorithms = ["HS256"] if "secret" in data else ["RS256"]
        settings = {
            "jwksUrl": data.get("jwksUrl"),
            "issuer": data.get("issuer"),
            "audience": data.get("audience"),
            "algorithms": data.get("algorithms", default_algorithms),
            "leewaySeconds": data.get("leewaySeconds", 0),
        }
        secret = {"secret": data["secret"]} if "secret" in data else {}
        return {"secret": secret, "settings": settings}


OAUTH2_GRANTS = ("client_credentials", "authorization_code", "refresh_token")
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
# Token-request parameters the grant itself sets; `extraParams` cannot override them.
RESERVED_TOKEN_PARAMS = frozenset(
    {
        "grant_type",
        "client_id",
        "client_secret",
        "code",
        "code_verifier",
        "redirect_uri",
        "refresh_token",
        "scope",
        "audience",
    }
)
# `{{fields.NAME}}` in a customToken request (the data plane fills it the same way).
ANY_PLACEHOLDER = re.compile(r"\{\{.*?\}\}", re.S)
FIELD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _json_path(value: str) -> None:
    try:
        path = parse_path(value)
    except JsonPathError as exc:
        raise ValidationError(str(exc)) from None
    if WILDCARD in path.segments:
        raise ValidationError("Must name one value: no '*' segment.")


def _token_prefix() -> fields.String:
    """What precedes a minted token in its header (`Bearer`; empty: the bare token)."""
    return fields.String(
        load_default="Bearer", validate=[validate.Length(max=40), validate_header_value]
    )


class OAuth2Secret(SecretSchema):
    """OAuth2 toward a target: client credentials, authorization code (Connect, PKCE), or a
    refresh token obtained elsewhere. Only clientSecret and refreshToken are sealed."""

    grantType = fields.String(
        load_default="client_credentials", validate=validate.OneOf(OAUTH2_GRANTS)
    )
    tokenUrl = fields.String(required=True, validate=HTTP_URL)
    authorizeUrl = fields.String(validate=HTTP_URL)
    clientId = fields.String(
        required=True, validate=[validate.Length(min=1, max=500), validate_no_control_chars]
    )
    clientSecret = secret_string(validate=[validate.Length(min=1), validate_no_control_chars])
    clientAuthMethod = fields.String(validate=validate.OneOf(CLIENT_AUTH_METHODS))
    usePkce = fields.Boolean(truthy={True}, falsy={False})  # JSON booleans only
    refreshToken = secret_string(validate=[validate.Length(min=1), validate_no_control_chars])
    scope = fields.String(validate=[validate.Length(max=2000), validate_no_control_chars])
    audience = fields.String(validate=[validate.Length(min=1, max=500), validate_no_control_chars])
    extraParams = string_map()
    header = _header_name(load_default="Authorization")
    prefix = _token_prefix()

    @validates_schema
    def _grant_needs(self, data, **kwargs):
        grant = data.get("grantType", "client_credentials")
        secret = "clientSecret" in data
        method = data.get("clientAuthMethod")
        if grant == "authorization_code" and "authorizeUrl" not in data:
            raise ValidationError("Required for the authorization_code grant.", "authorizeUrl")
        if grant != "authorization_code" and "authorizeUrl" in data:
            raise ValidationError("Only for the authorization_code grant.", "authorizeUrl")
        if grant != "authorization_code" and "usePkce" in data:
            raise ValidationError("Only for the authorization_code grant.", "usePkce")
        if grant == "client_credentials" and not secret:
            raise ValidationError("Required for the client_credentials grant.", "clientSecret")
        if grant == "refresh_token" and "refreshToken" not in data:
            raise ValidationError("Required for the refresh_token grant.", "refreshToken")
        if grant != "refresh_token" and "refreshToken" in data:
            raise ValidationError("Only for the refresh_token grant.", "refreshToken")
        if method in ("client_secret_basic", "client_secret_post") and not secret:
            raise ValidationError(f"Required by clientAuthMethod {method}.", "clientSecret")
        if method == "none" and secret:
            raise ValidationError(
                "A public client (clientAuthMethod none) has no secret.", "clientSecret"
            )
        if method == "none" and grant == "client_credentials":
            raise ValidationError(
                "The client_credentials grant needs client authentication.", "clientAuthMethod"
            )
        if grant == "authorization_code" and not secret and data.get("usePkce") is False:
            raise ValidationError("A public client (no clientSecret) must use PKCE.", "usePkce")
        reserved = sorted(
            k for k in data.get("extraParams", {}) if k.lower() in RESERVED_TOKEN_PARAMS
        )
        if reserved:
            raise ValidationError(
                f"{', '.join(reserved)} is set by the grant itself.", "extraParams"
            )

    @post_load
    def _split(self, data, **kwargs):
        grant = data["grantType"]
        secret = {k: data[k] for k in ("clientSecret", "refreshToken") if k in data}
        method = data.get("clientAuthMethod") or (
            "client_secret_basic" if "clientSecret" in data else "none"
        )
        settings = {
            "grantType": grant,
            "tokenUrl": data["tokenUrl"],
            "authorizeUrl": data.get("authorizeUrl"),
            "clientId": data["clientId"],
            "clientAuthMethod": method,
            "usePkce": data.get("usePkce", True) if grant == "authorization_code" else False,
            "scope": data.get("scope"),
            "audience": data.get("audience"),
            "extraParams": data.get("extraParams", {}),
            "header": data["header"],
            "prefix": data["prefix"].strip(),
        }
        return {"secret": secret, "settings": settings}


def _check_references(value, known: set[str], where: str) -> None:
    """Every `{{...}}` in the strings of `value` is a `{{fields.NAME}}` of a known field."""
    if isinstance(value, dict):
        for item in value.values():
            _check_references(item, known, where)
    elif isinstance(value, list):
        for item in value:
            _check_references(item, known, where)
    elif isinstance(value, str):
        for placeholder in ANY_PLACEHOLDER.findall(value):
            match = FIELD_REFERENCE.fullmatch(placeholder)
            if match is None:
                raise ValidationError("Only {{fields.NAME}} placeholders are supported.", where)
            if match.group(1) not in known:
                raise ValidationError(
                    f"References an unknown field {match.group(1)!r}; add it to fields.", where
                )


def _body_format(body) -> str:
    """The format of a body given without `bodyFormat`: a string not shaped like JSON is a
    form (`a=1&b=2`), anything else JSON."""
    if isinstance(body, str) and body.lstrip()[:1] not in ("{", "["):
        return "form"
    return "json"


class CustomTokenSecret(SecretSchema):
    """Fetch a token with an HTTP request the credential describes, then inject it.

    `fields` (sealed) holds values the request's headers and body reference as
    `{{fields.NAME}}`; headers and body are sealed too. Where the token and its
    lifetime are read, and how it is sent, are settings.
    """

    tokenUrl = fields.String(required=True, validate=HTTP_URL)
    method = fields.String(load_default="POST", validate=validate.OneOf(["GET", "POST"]))
    fields_ = fields.Dict(
        data_key="fields",
        attribute="fields",
        keys=fields.String(
            validate=validate.Regexp(
                FIELD_NAME, error="Field names are 1-64 letters, digits, _ or -."
            )
        ),
        values=fields.String(validate=validate_no_control_chars),
    )
    headers = string_map(headers=True)
    body = fields.Raw()
    bodyFormat = fields.String(validate=validate.OneOf(["json", "form"]))
    tokenLocation = fields.String(load_default="body", validate=validate.OneOf(["body", "header"]))
    tokenPath = fields.String(load_default="access_token", validate=_json_path)
    tokenHeader = _header_name()
    ttlFrom = fields.String(
        load_default="fixed", validate=validate.OneOf(["fixed", "path", "jwtExp"])
    )
    ttlSeconds = fields.Integer(
        load_default=3600, strict=True, validate=validate.Range(min=1, max=86400)
    )
    ttlPath = fields.String(validate=_json_path)
    injectIn = fields.String(load_default="header", validate=validate.OneOf(["header", "query"]))
    queryParam = fields.String(
        validate=[validate.Length(min=1, max=200), validate_no_control_chars]
    )
    header = _header_name(load_default="Authorization")
    prefix = _token_prefix()

    @validates_schema
    def _shape(self, data, **kwargs):
        body = data.get("body")
        if "body" in data and not isinstance(body, dict | str):
            raise ValidationError("Must be a JSON object or a string.", "body")
        if data.get("bodyFormat") == "form" and isinstance(body, dict):
            nested = sorted(k for k, v in body.items() if isinstance(v, dict | list))
            if nested:
                raise ValidationError(
                    f"A form body is flat: {', '.join(nested)} holds an object or list.", "body"
                )
        if data.get("tokenLocation") == "header" and "tokenHeader" not in data:
            raise ValidationError("Required when tokenLocation is header.", "tokenHeader")
        if data.get("ttlFrom") == "path" and "ttlPath" not in data:
            raise ValidationError("Required when ttlFrom is path.", "ttlPath")
        if data.get("injectIn") == "query" and "queryParam" not in data:
            raise ValidationError("Required when injectIn is query.", "queryParam")
        known = set(data.get("fields", {}))
        for name, value in data.get("headers", {}).items():
            _check_references(value, known, f"headers.{name}")
        _check_references(body, known, "body")

    @post_load
    def _split(self, data, **kwargs):
        secret = {k: data[k] for k in ("fields", "headers", "body") if k in data}
        public = (
            "tokenUrl", "method", "bodyFormat", "tokenLocation", "tokenPath", "ttlFrom",
            "ttlSeconds", "injectIn", "header",
        )  # fmt: skip
        settings = {k: data.get(k) for k in public}
        settings["bodyFormat"] = data.get("bodyFormat") or _body_format(data.get("body"))
        settings["prefix"] = data["prefix"].strip()
        for optional in ("tokenHeader", "ttlPath", "queryParam"):
            settings[optional] = data.get(optional)
        settings["fieldNames"] = sorted(data.get("fields", {}))
        return {"secret": secret, "settings": settings}


class CustomSecret(SecretSchema):
    """Arbitrary headers (and query parameters) added to every target request."""

    headers = string_map(headers=True)
    queryParams = string_map()

    @validates_schema
    def _something(self, data, **kwargs):
        if not data.get("headers") and not data.get("queryParams"):
            raise ValidationError("Give at least one header (or query parameter).", "headers")

    @post_load
    def _split(self, data, **kwargs):
        headers, query = data.get("headers", {}), data.get("queryParams", {})
        return {
            "secret": {"headers": headers, "queryParams": query},
            "settings": {
                "headerNames": sorted(headers),
                "queryParamNames": sorted(query),
            },
        }


class NoneSecret(SecretSchema):
    @post_load
    def _split(self, data, **kwargs):
        return {"secret": {}, "settings": {}}


SECRET_SCHEMAS: dict[AuthType, type[SecretSchema]] = {
    AuthType.API_KEY: ApiKeySecret,
    AuthType.BEARER: BearerSecret,
    AuthType.BASIC_AUTH: BasicAuthSecret,
    AuthType.JWT: JwtSecret,
    AuthType.JWT_VERIFY: JwtVerifySecret,
    AuthType.OAUTH2: OAuth2Secret,
    AuthType.CUSTOM_TOKEN: CustomTokenSecret,
    AuthType.CUSTOM: CustomSecret,
    AuthType.NONE: NoneSecret,
}


def load_secret(auth_type: AuthType, raw) -> tuple[dict, dict]:
    """Validate `raw` for `auth_type`; return `(secret, settings)`.

    Errors are raised as a ValidationError keyed under `credentialSecret`.
    """
    if raw is None and auth_type is AuthType.NONE:
        raw = {}
    if raw is None:
        raise ValidationError({"credentialSecret": ["Missing data for required field."]})
    if not isinstance(raw, dict):
        raise ValidationError({"credentialSecret": ["Must be a JSON object."]})
    try:
        result = SECRET_SCHEMAS[auth_type]().load(raw)
    except ValidationError as exc:
        raise ValidationError({"credentialSecret": exc.messages}) from None
    return result["secret"], result["settings"]
