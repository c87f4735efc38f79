"""The OpenAPI document, served by an in-process app (pytest-flask) on a real SQLite file."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from admin import create_app
from admin.cli import migrate
from models.crypto import KeyRing
from models.settings import Settings
from tests.stores import scratch_database_url


@pytest.fixture
def app(tmp_path):
    settings = Settings(
        var_dir=tmp_path,
        database_url=scratch_database_url(tmp_path),
        master_keys=None,
        max_requests_per_minute=1000,
        max_requests_per_day=20000,
        max_api_body_bytes=1024 * 1024,
    )
    migrate(settings)
    return create_app(settings, key_ring=KeyRing([("k1", bytes(32))]))


def test_openapi_document_is_valid(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    validate(response.json)


def test_every_route_is_documented(app, client):
    document = client.get("/api/openapi.json").json
    documented = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "root") or rule.endpoint.startswith(("bare_", "web.")):
            continue  # the document describes the JSON API, not the web pages
        assert getattr(app.view_functions[rule.endpoint], "openapi", None), rule.rule
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            camel = _camel_path(path)
            assert (camel, method) in documented, (camel, method)


def _camel_path(path: str) -> str:
    import re

    return re.sub(
        r"{([a-z_]+)}",
        lambda m: "{" + re.sub(r"_([a-z])", lambda n: n.group(1).upper(), m.group(1)) + "}",
        path,
    )


def test_documented_schemas_carry_the_api_field_names(client):
    schemas = client.get("/api/openapi.json").json["components"]["schemas"]
    proxy = schemas["Proxy"]["properties"]
    for name in ("proxyName", "proxyAlias", "proxyAdditionalHeaders", "proxyMaxRequestsPerDay"):
        assert name in proxy
    assert "credentialSecret" in schemas["Credential"]["properties"]
