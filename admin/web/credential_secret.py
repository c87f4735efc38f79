"""`credentialSecret` from the new-credential form: only the fields that apply to the chosen
auth type (and grant, token location, lifetime source, injection), unchecked otherwise: the
Core API validates it and names the field when it refuses."""

from __future__ import annotations

from admin.web.forms_credentials import CredentialForm
from models.json_limits import loads


class LineError(ValueError):
    """A textarea line that is not in the expected shape; `field` names the form field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def pairs(field: str, text: str | None, separator: str) -> dict[str, str]:
    """`name<separator>value` lines as a mapping; a line without the separator is refused
    (silently dropping it would send a request other than the one typed)."""
    result: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        if separator not in line:
            shape = "Name: value" if separator == ":" else "name=value"
            raise LineError(field, f"Line {number} is not '{shape}'.")
        name, value = line.split(separator, 1)
        result[name.strip()] = value.strip()
    return result


def _typed(**values) -> dict:
    """The values that were typed (empty strings and None left out)."""
    return {k: v for k, v in values.items() if v not in (None, "")}


def oauth2_secret(form: CredentialForm) -> dict:
    grant = form.oa_grant_type.data
    secret = {"grantType": grant} | _typed(
        tokenUrl=form.oa_token_url.data.strip(),
        clientId=form.oa_client_id.data.strip(),
        clientSecret=form.oa_client_secret.data,
        clientAuthMethod=form.oa_client_auth_method.data,
        scope=form.oa_scope.data.strip(),
        audience=form.oa_audience.data.strip(),
        header=form.oa_header.data.strip(),
    )
    secret["prefix"] = form.oa_prefix.data.strip()  # empty: the bare token
    extra = pairs("oa_extra_params", form.oa_extra_params.data, "=")
    if extra:
        secret["extraParams"] = extra
    if grant == "authorization_code":
        secret |= _typed(authorizeUrl=form.oa_authorize_url.data.strip())
        secret["usePkce"] = bool(form.oa_use_pkce.data)
    if grant == "refresh_token":
        secret |= _typed(refreshToken=form.oa_refresh_token.data)
    return secret


def _body(text: str | None):
    """The token request's body: JSON when it parses; a string otherwise, unless it was
    plainly meant as JSON (starts with `{` or `[`), which is refused with the parser's word."""
    text = (text or "").strip()
    try:
        return loads(text)
    except ValueError as exc:
        if text.startswith(("{", "[")):
            raise LineError("ct_body", f"Not valid JSON: {exc}") from exc
        return text


def custom_token_secret(form: CredentialForm) -> dict:
    secret = {
        "method": form.ct_method.data,
        "tokenLocation": form.ct_token_location.data,
        "ttlFrom": form.ct_ttl_from.data,
        "injectIn": form.ct_inject_in.data,
    } | _typed(tokenUrl=form.ct_token_url.data.strip(), bodyFormat=form.ct_body_format.data)
    fields = pairs("ct_fields", form.ct_fields.data, "=")
    headers = pairs("ct_headers", form.ct_headers.data, ":")
    secret |= {k: v for k, v in (("fields", fields), ("headers", headers)) if v}
    if (form.ct_body.data or "").strip():
        secret["body"] = _body(form.ct_body.data)
    if form.ct_token_location.data == "header":
        secret |= _typed(tokenHeader=form.ct_token_header.data.strip())
    else:
        secret |= _typed(tokenPath=form.ct_token_path.data.strip())
    if form.ct_ttl_from.data == "fixed":
        secret |= _typed(ttlSeconds=form.ct_ttl_seconds.data)
    elif form.ct_ttl_from.data == "path":
        secret |= _typed(ttlPath=form.ct_ttl_path.data.strip())
    if form.ct_inject_in.data == "query":
        secret |= _typed(queryParam=form.ct_query_param.data.strip())
    else:
        secret |= _typed(header=form.ct_header.data.strip())
        secret["prefix"] = form.ct_prefix.data.strip()
    return secret


def credential_secret(form: CredentialForm) -> dict | None:
    """`credentialSecret` for the chosen auth type, from the fields that apply to it.
    Raises LineError for a textarea line the form cannot read."""
    match form.auth_type.data:
        case "apiKey":
            secret = {"value": form.value.data}
            if form.query_name.data:
                secret["query"] = form.query_name.data
            elif form.header_name.data:
                secret["header"] = form.header_name.data
            return secret
        case "bearer" | "jwt":
            return {"token": form.token.data, "prefix": form.prefix.data or ""}
        case "basicAuth":
            return {"username": form.username.data, "password": form.password.data}
        case "jwtVerify":
            secret = {"jwksUrl": form.jwks_url.data} if form.jwks_url.data else {}
            if form.hs_secret.data:
                secret["secret"] = form.hs_secret.data
            secret |= {k: v for k, v in (("issuer", form.issuer.data),
                                         ("audience", form.audience.data)) if v}  # fmt: skip
            return secret
        case "custom":
            return {"headers": pairs("custom_headers", form.custom_headers.data, ":")}
        case "oauth2":
            return oauth2_secret(form)
        case "customToken":
            return custom_token_secret(form)
    return None
