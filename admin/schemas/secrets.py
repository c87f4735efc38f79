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
from models.enums import AuthType

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


class OAuth2Secret(SecretSchema):
    """OAuth2 toward a target: client credentials, or a refresh token obtained elsewhere."""

    grantType = fields.String(
        load_default="client_credentials",
        validate=validate.OneOf(["client_credentials", "refresh_token"]),
    )
    tokenUrl = fields.String(required=True, validate=HTTP_URL)
    clientId = fields.String(required=True, validate=validate.Length(min=1))
    clientSecret = secret_string(validate=validate.Length(min=1))
    refreshToken = secret_string(validate=validate.Length(min=1))
    scope = fields.String()
    audience = fields.String()

    @validates_schema
    def _grant_needs(self, data, **kwargs):
        grant = data.get("grantType", "client_credentials")
        if grant == "client_credentials" and "clientSecret" not in data:
            raise ValidationError("Required for the client_credentials grant.", "clientSecret")
        if grant == "refresh_token" and "refreshToken" not in data:
            raise ValidationError("Required for the refresh_token grant.", "refreshToken")

    @post_load
    def _split(self, data, **kwargs):
        secret = {k: data[k] for k in ("clientSecret", "refreshToken") if k in data}
        settings = {
            k: data.get(k) for k in ("grantType", "tokenUrl", "clientId", "scope", "audience")
        }
        return {"secret": secret, "settings": settings}


class CustomTokenSecret(SecretSchema):
    """Fetch a token with an HTTP request, then inject it as `<header>: <prefix> <token>`."""

    tokenUrl = fields.String(required=True, validate=HTTP_URL)
    method = fields.String(load_default="POST", validate=validate.OneOf(["GET", "POST"]))
    headers = string_map(headers=True)
    body = fields.Raw()
    tokenPath = fields.String(load_default="access_token", validate=validate.Length(min=1))
    ttlSeconds = fields.Integer(load_default=3600, validate=validate.Range(min=1, max=86400))
    header = _header_name(load_default="Authorization")
    prefix = fields.String(load_default="Bearer", validate=validate_header_value)

    @validates_schema
    def _body_shape(self, data, **kwargs):
        if "body" in data and not isinstance(data["body"], dict | str):
            raise ValidationError("Must be a JSON object or a string.", "body")

    @post_load
    def _split(self, data, **kwargs):
        secret = {k: data[k] for k in ("headers", "body") if k in data}
        public = ("tokenUrl", "method", "tokenPath", "ttlSeconds", "header", "prefix")
        return {"secret": secret, "settings": {k: data[k] for k in public}}


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
