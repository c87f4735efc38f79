"""The new-credential form: every auth type's fields, each with a one-line help text.

The form only carries what was typed; `credential_secret` (views_credentials.py)
builds the API's `credentialSecret` from the fields that apply to the chosen
type and grant, and the Core API validates it. Its field errors come back next
to the field they name: which form field an API name maps to depends on the
auth type (`credentialSecret.header` is the API key's header for apiKey and the
token's header for oauth2), hence `API_FIELDS` per type.
"""

from __future__ import annotations

from typing import ClassVar

from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Optional

from admin.web.forms import EFFECTS, ApiForm
from models.enums import ALLOWED_AUTH_TYPES

AUTH_TYPES = [
    ("apiKey", "API key"),
    ("bearer", "Bearer token"),
    ("basicAuth", "Basic auth"),
    ("jwt", "JWT (stored token)"),
    ("jwtVerify", "JWT, verified (proxy credentials)"),
    ("oauth2", "OAuth2 (target credentials)"),
    ("customToken", "Token from a token request (target credentials)"),
    ("custom", "Custom headers (target credentials)"),
    ("none", "None (target credentials)"),
]
# Which types each use allows (the API refuses the others), for the form's script.
ALLOWED_BY_USE = {
    use.value: [value for value, _ in AUTH_TYPES if value in {t.value for t in types}]
    for use, types in ALLOWED_AUTH_TYPES.items()
}
GRANT_TYPES = [
    ("client_credentials", "client_credentials (server to server)"),
    ("authorization_code", "authorization_code (Connect: a person consents at the provider)"),
    ("refresh_token", "refresh_token (a refresh token you already have)"),
]
CLIENT_AUTH_METHODS = [
    ("", "default (client_secret_basic when a secret is given, else none)"),
    ("client_secret_basic", "client_secret_basic (HTTP Basic)"),
    ("client_secret_post", "client_secret_post (in the form body)"),
    ("none", "none (public client, PKCE)"),
]

COMMON_API_FIELDS = {
    "credentialName": "name",
    "credentialType": "credential_type",
    "credentialAuthType": "auth_type",
    "credentialRegion": "region",
    "credentialDefaultRuleEffect": "default_effect",
}
# API field name (under credentialSecret) → form field, per auth type. The bare
# `credentialSecret` (a message about the whole object) goes to the type's first field.
SECRET_API_FIELDS: dict[str, dict[str, str]] = {
    "apiKey": {"value": "value", "header": "header_name", "query": "query_name", "": "value"},
    "bearer": {"token": "token", "prefix": "prefix", "": "token"},
    "jwt": {"token": "token", "prefix": "prefix", "": "token"},
    "basicAuth": {"username": "username", "password": "password", "": "username"},
    "jwtVerify": {
        "secret": "hs_secret",
        "jwksUrl": "jwks_url",
        "issuer": "issuer",
        "audience": "audience",
        "": "jwks_url",
    },
    "custom": {"headers": "custom_headers", "": "custom_headers"},
    "oauth2": {
        "grantType": "oa_grant_type",
        "tokenUrl": "oa_token_url",
        "authorizeUrl": "oa_authorize_url",
        "clientId": "oa_client_id",
        "clientSecret": "oa_client_secret",
        "clientAuthMethod": "oa_client_auth_method",
        "usePkce": "oa_use_pkce",
        "scope": "oa_scope",
        "audience": "oa_audience",
        "extraParams": "oa_extra_params",
        "refreshToken": "oa_refresh_token",
        "header": "oa_header",
        "prefix": "oa_prefix",
        "": "oa_token_url",
    },
    "customToken": {
        "tokenUrl": "ct_token_url",
        "method": "ct_method",
        "fields": "ct_fields",
        "headers": "ct_headers",
        "body": "ct_body",
        "bodyFormat": "ct_body_format",
        "tokenLocation": "ct_token_location",
        "tokenPath": "ct_token_path",
        "tokenHeader": "ct_token_header",
        "ttlFrom": "ct_ttl_from",
        "ttlSeconds": "ct_ttl_seconds",
        "ttlPath": "ct_ttl_path",
        "injectIn": "ct_inject_in",
        "header": "ct_header",
        "prefix": "ct_prefix",
        "queryParam": "ct_query_param",
        "": "ct_token_url",
    },
}


def api_fields_for(auth_type: str) -> dict[str, str]:
    """The API name → form field map for `auth_type` (most specific names first)."""
    secret = SECRET_API_FIELDS.get(auth_type, {})
    named = {f"credentialSecret.{k}": v for k, v in secret.items() if k}
    whole = {"credentialSecret": secret.get("", "value")}
    return {**COMMON_API_FIELDS, **named, **whole}


def _help(text: str) -> dict:
    return {"description": text}


class CredentialForm(ApiForm):
    """A new credential of any auth type; the fields that do not apply are ignored."""

    API_FIELDS: ClassVar[dict[str, str]] = api_fields_for("apiKey")

    name = StringField("Name", validators=[DataRequired()])
    credential_type = SelectField(
        "Used as", choices=[("proxy", "proxy credential (callers present it)"),
                            ("target", "target credential (injected toward the API)")],
    )  # fmt: skip
    auth_type = SelectField("Type", choices=AUTH_TYPES)
    region = StringField("Region", default="us-east-1", validators=[DataRequired()])
    default_effect = SelectField("When no rule matches", choices=EFFECTS)

    value = PasswordField("Key value (API key)")
    header_name = StringField("Header name (API key; empty: Authorization)")
    query_name = StringField("or query parameter name (API key)")
    token = PasswordField("Token (bearer, JWT)")
    prefix = StringField("Prefix (bearer, JWT)", default="Bearer")
    username = StringField("Username (basic auth)")
    password = PasswordField("Password (basic auth)")
    hs_secret = PasswordField("Shared secret, 32 bytes or more (verified JWT)")
    jwks_url = StringField("or JWKS URL (verified JWT)")
    issuer = StringField("Issuer (verified JWT)")
    audience = StringField("Audience (verified JWT)")
    custom_headers = TextAreaField("Headers, one 'Name: value' per line (custom)")

    # oauth2
    oa_grant_type = SelectField(
        "Grant type (OAuth2)",
        choices=GRANT_TYPES,
        **_help("How the gateway gets access tokens; authorization_code needs Connect after."),
    )
    oa_token_url = StringField(
        "Token URL (OAuth2)",
        **_help("The provider's token endpoint, e.g. https://oauth2.googleapis.com/token"),
    )
    oa_authorize_url = StringField(
        "Authorize URL (OAuth2)",
        **_help(
            "Where Connect sends you to consent (authorization_code), "
            "e.g. https://accounts.google.com/o/oauth2/v2/auth"
        ),
    )
    oa_client_id = StringField(
        "Client ID (OAuth2)",
        **_help("Your app's id at the provider, e.g. 1234-abc.apps.googleusercontent.com"),
    )
    oa_client_secret = PasswordField(
        "Client secret (OAuth2)",
        **_help(
            "Sealed; required for client_credentials, may be empty for a public client with PKCE"
        ),
    )
    oa_client_auth_method = SelectField(
        "Client authentication (OAuth2)",
        choices=CLIENT_AUTH_METHODS,
        **_help("How the client id and secret reach the token endpoint, e.g. client_secret_basic"),
    )
    oa_use_pkce = BooleanField(
        "Use PKCE (S256) (OAuth2)",
        default=True,
        **_help("authorization_code only: a one-time code verifier that stays in the admin"),
    )
    oa_scope = StringField(
        "Scopes (OAuth2)",
        **_help("Space separated, e.g. openid email offline_access"),
    )
    oa_audience = StringField(
        "Audience (OAuth2)",
        **_help("Optional, for providers that ask for one, e.g. https://api.example.com"),
    )
    oa_extra_params = TextAreaField(
        "Extra token parameters (OAuth2)",
        **_help("One name=value per line, e.g. resource=https://graph.microsoft.com"),
    )
    oa_refresh_token = PasswordField(
        "Refresh token (OAuth2)",
        **_help("refresh_token grant only: a refresh token obtained elsewhere; sealed"),
    )
    oa_header = StringField(
        "Header (OAuth2)",
        default="Authorization",
        **_help("The header the access token is sent in, e.g. Authorization"),
    )
    oa_prefix = StringField(
        "Prefix (OAuth2)",
        default="Bearer",
        **_help("Put before the token, e.g. Bearer; empty: the bare token"),
    )

    # customToken
    ct_token_url = StringField(
        "Token URL (token request)",
        **_help("Where the token request goes, e.g. https://api.example.com/auth/token"),
    )
    ct_method = SelectField(
        "Method (token request)",
        choices=[("POST", "POST"), ("GET", "GET")],
        **_help("The token request's HTTP method, e.g. POST"),
    )
    ct_fields = TextAreaField(
        "Fields (token request)",
        **_help(
            "Sealed values, one name=value per line, used as {{fields.NAME}} below, "
            "e.g. password=s3cret"
        ),
    )
    ct_headers = TextAreaField(
        "Request headers (token request)",
        **_help("One 'Name: value' per line, e.g. X-Api-Key: {{fields.key}}"),
    )
    ct_body = TextAreaField(
        "Body (token request)",
        **_help(
            'JSON, e.g. {"username": "{{fields.user}}", "password": "{{fields.password}}"}; sealed'
        ),
    )
    ct_body_format = SelectField(
        "Body format (token request)",
        choices=[
            ("", "automatic (form for a name=value&... text, else JSON)"),
            ("json", "json"),
            ("form", "form (application/x-www-form-urlencoded)"),
        ],
        **_help("How the body is sent, e.g. json; form takes a flat JSON object or a=1&b=2 text"),
    )
    ct_token_location = SelectField(
        "Token is in (token request)",
        choices=[("body", "the JSON answer"), ("header", "a header of the answer")],
        **_help("Where the answer carries the token"),
    )
    ct_token_path = StringField(
        "Token JSON path (token request)",
        default="access_token",
        **_help("The token's place in the JSON answer, e.g. data.token"),
    )
    ct_token_header = StringField(
        "Token header (token request)",
        **_help("The answer's header holding the token, e.g. X-Issued-Token"),
    )
    ct_ttl_from = SelectField(
        "Lifetime from (token request)",
        choices=[
            ("fixed", "a fixed number of seconds"),
            ("path", "a JSON path in the answer (seconds)"),
            ("jwtExp", "the token's exp (a JWT)"),
        ],
        **_help("How long a token is used before a new one is fetched"),
    )
    ct_ttl_seconds = IntegerField(
        "Lifetime in seconds (token request)",
        default=3600,
        validators=[Optional()],
        **_help("Fixed lifetime, 1 to 86400, e.g. 3600"),
    )
    ct_ttl_path = StringField(
        "Lifetime JSON path (token request)",
        **_help("Seconds the token lives, read from the answer, e.g. data.ttl"),
    )
    ct_inject_in = SelectField(
        "Send the token in (token request)",
        choices=[("header", "a header"), ("query", "a query parameter")],
        **_help("How the token travels to the target"),
    )
    ct_header = StringField(
        "Header (token request)",
        default="Authorization",
        **_help("The header the token is sent in, e.g. Authorization"),
    )
    ct_prefix = StringField(
        "Prefix (token request)",
        default="Bearer",
        **_help("Put before the token, e.g. Bearer; empty: the bare token"),
    )
    ct_query_param = StringField(
        "Query parameter (token request)",
        **_help("The query parameter the token is sent in, e.g. access_token"),
    )

    def show_errors(self, api_errors: dict[str, list[str]], message: str = "") -> None:
        """The API's field errors next to the fields of the chosen auth type."""
        self.API_FIELDS = api_fields_for(self.auth_type.data)
        super().show_errors(api_errors, message)
