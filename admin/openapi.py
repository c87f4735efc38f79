"""The OpenAPI 3 document, generated from the routes and their marshmallow schemas.

Each view declares what it takes and returns with `@doc(...)`; the document
walks the app's URL map, so an endpoint without `@doc` is a test failure,
not a silent gap.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app, jsonify
from marshmallow import Schema, fields

from admin.schemas.common import ApiSchema

VERSION = "0.1.0"
ERROR_STATUSES = {
    400: "Invalid input (the body names each bad field)",
    401: "Missing, invalid or revoked user token",
    402: "Not enough pool credits (INSUFFICIENT_CREDITS, pool API)",
    403: "Your role in this client does not allow this",
    404: "Not found (or not yours)",
    409: "Conflicts with the current state",
    410: "Gone: the invite was used, revoked or has expired",
    413: "Request body too large",
    422: "Invalid input (pool API): details.field names the bad field or query parameter",
    429: "Too many failed authentications from your address (TOO_MANY_FAILURES); see Retry-After",
    502: "The source could not be fetched (pool API)",
}


@dataclass
class EndpointDoc:
    summary: str
    tag: str
    body: type[Schema] | None = None
    envelope: str | None = None
    schema: type[Schema] | None = None
    status: int = 200
    query: dict[str, fields.Field] = field(default_factory=dict)
    auth: bool = True
    errors: tuple[int, ...] = (400, 401, 403, 404)
    returns_list: bool = False  # a bare JSON array of `schema`, not an envelope
    flat_errors: bool = False  # errors as `FlatErrorSchema` (admin.errors.flat_errors)
    pool: bool = False  # the pool API (seed 003): `pp_` keys, errors as `PoolErrorSchema`


def doc(summary: str, tag: str, **kwargs) -> Callable:
    """Attach an OpenAPI description to a view function."""

    def decorate(view: Callable) -> Callable:
        view.openapi = EndpointDoc(summary=summary, tag=tag, **kwargs)
        return view

    return decorate


def pool_doc(summary: str, **kwargs) -> Callable:
    """`doc` for a pool API view (seed 003, under /pool): `Bearer pp_...` keys, seed errors."""
    kwargs.setdefault("errors", (401, 422))
    return doc(summary, "pool", pool=True, **kwargs)


class ErrorDetail(ApiSchema):
    code = fields.String(metadata={"example": "NOT_FOUND"})
    message = fields.String()
    details = fields.Dict()


class ErrorSchema(ApiSchema):
    message = fields.String()
    error = fields.Nested(ErrorDetail)


class FlatErrorSchema(ErrorDetail):
    """An error as the metrics history answers it (seed 004): no envelope."""


class PoolErrorSchema(ApiSchema):
    """An error as the pool API answers it (seed 003): {"error": {code, message, details}}."""

    error = fields.Nested(ErrorDetail)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: "{" + _camel(m.group(1)) + "}", rule)


def _envelope_name(spec_doc: EndpointDoc) -> str:
    return f"{spec_doc.schema.__name__.removesuffix('Schema')}Envelope"


def _register_envelope(spec: APISpec, spec_doc: EndpointDoc) -> str | None:
    if spec_doc.envelope is None:
        return None
    name = _envelope_name(spec_doc)
    if name not in spec.components.schemas:
        envelope = Schema.from_dict(
            {
                spec_doc.envelope: fields.List(fields.Nested(spec_doc.schema)),
                "message": fields.String(metadata={"example": "Success"}),
            },
            name=name,
        )
        spec.components.schema(name, schema=envelope)
    return name


def _operation(spec: APISpec, rule, spec_doc: EndpointDoc) -> dict:
    operation: dict = {"summary": spec_doc.summary, "tags": [spec_doc.tag]}
    params = [
        {"in": "path", "name": _camel(arg), "required": True, "schema": {"type": "string"}}
        for arg in rule.arguments
        if arg not in (rule.defaults or {})
    ]
    if spec_doc.query:
        params += [{"in": "query", "schema": Schema.from_dict(spec_doc.query)}]
    if params:
        operation["parameters"] = params
    if spec_doc.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": spec_doc.body}},
        }
    envelope = _register_envelope(spec, spec_doc)
    success: dict = {"description": "Success"}
    if envelope:
        success["content"] = {"application/json": {"schema": envelope}}
    elif spec_doc.returns_list:
        success["content"] = {
            "application/json": {"schema": {"type": "array", "items": spec_doc.schema}}
        }
    elif spec_doc.schema is not None:  # one object, not an envelope
        success["content"] = {"application/json": {"schema": spec_doc.schema}}
    else:
        success["content"] = {"application/json": {"schema": "MessageSchema"}}
    responses = {str(spec_doc.status): success}
    error_schema = "FlatErrorSchema" if spec_doc.flat_errors else "ErrorSchema"
    if spec_doc.pool:
        error_schema = "PoolErrorSchema"
    for status in (*spec_doc.errors, 429) if spec_doc.auth else (400,):
        responses[str(status)] = {
            "description": ERROR_STATUSES[status],
            "content": {"application/json": {"schema": error_schema}},
        }
    operation["responses"] = responses
    if not spec_doc.auth:
        operation["security"] = []
    elif spec_doc.pool:
        operation["security"] = [{"poolKey": []}]
    return operation


def build_spec(app: Flask) -> dict:
    """The OpenAPI document of every `/api/...` endpoint (the same also answer without `/api`)."""
    spec = APISpec(
        title="Portcullis Core API",
        version=VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Every /api/... path also answers without the /api prefix. "
            "Authenticate with `Authorization: u-...` (a `Bearer` prefix is also accepted)."
        },
        security=[{"userToken": []}],
    )
    spec.components.security_scheme(
        "userToken", {"type": "apiKey", "in": "header", "name": "Authorization"}
    )
    spec.components.schema("ErrorSchema", schema=ErrorSchema)
    spec.components.schema("FlatErrorSchema", schema=FlatErrorSchema)
    spec.components.schema("PoolErrorSchema", schema=PoolErrorSchema)
    spec.components.security_scheme("poolKey", {"type": "http", "scheme": "bearer"})
    spec.components.schema("MessageSchema", schema=Schema.from_dict({"message": fields.String()}))
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        spec_doc = getattr(view, "openapi", None)
        if spec_doc is None or rule.endpoint.startswith("bare_"):
            continue
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        spec.path(
            path=_openapi_path(rule.rule),
            operations={m.lower(): _operation(spec, rule, spec_doc) for m in methods},
        )
    return spec.to_dict()


bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
@doc("This OpenAPI document", "meta", auth=False)
def openapi_document():
    return jsonify(build_spec(current_app))
