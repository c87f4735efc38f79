"""Names and labels refuse control characters, line separators and bidi overrides
(models/names.py), on every Core API field that names something and in the CLI."""

from __future__ import annotations

import re
import uuid

import pytest
import requests

from tests.support import (
    Api,
    create,
    credential_body,
    error_fields,
    new_client,
    proxy_body,
    proxy_parts,
    run_admin_cli,
    run_admin_cli_in_process,
    target_body,
)

REFUSED = {
    "NUL": "\x00",
    "SOH": "\x01",
    "TAB": "\t",
    "LF": "\n",
    "CR": "\r",
    "ESC": "\x1b",
    "US": "\x1f",
    "DEL": "\x7f",
    "C1 PAD": "\x80",
    "C1 NEL": "\x85",
    "C1 CSI": "\x9b",
    "C1 APC": "\x9f",
    "LINE SEPARATOR": "\u2028",
    "PARAGRAPH SEPARATOR": "\u2029",
    "LRE": "\u202a",
    "RLO": "\u202e",
    "LRI": "\u2066",
    "PDI": "\u2069",
}
ALLOWED = [
    "Acme GmbH",
    "Zürich – Ost",
    "שלום\u200f עולם",  # right-to-left text with its mark
    "\U0001f469\u200d\U0001f4bb team",  # an emoji joined with ZWJ
    "名前 とラベル",
    "a  b",
]
# A name field of the OpenAPI document → how to reach it: the path that creates a record
# (or None), the path that updates it (or None), and the list envelope.
NAME_FIELD = re.compile(r"(?i)(name|label)$")


@pytest.fixture(scope="module")
def world(admin_server, make_user) -> dict:
    user = make_user()
    api = Api(admin_server.base_url, user.token)
    client_id = new_client(api, "Names")
    base = f"/api/clients/{client_id}"
    parts = proxy_parts(api, client_id)
    proxy = create(api, f"{base}/proxies", proxy_body(parts), "proxies")
    credential = create(api, f"{base}/credentials", credential_body(), "credentials")
    meters = f"{base}/proxies/{proxy['sKey']}/meters"
    meter = create(api, meters, {"meterName": "Calls", "meterType": "request_count"}, "meters")
    return {
        "api": api,
        "fields": {
            "clientName": (
                "/api/clients",
                lambda name: {"clientName": name},
                f"/api/clients/{client_id}",
                "clients",
            ),
            "credentialName": (
                f"{base}/credentials",
                lambda name: credential_body(credentialName=name),
                f"{base}/credentials/{credential['sKey']}",
                "credentials",
            ),
            "targetName": (
                f"{base}/targets",
                lambda name: target_body(targetName=name),
                f"{base}/targets/{parts['proxyTargetId']}",
                "targets",
            ),
            "proxyName": (
                f"{base}/proxies",
                lambda name: proxy_body(parts, proxyName=name),
                f"{base}/proxies/{proxy['sKey']}",
                "proxies",
            ),
            "meterName": (
                meters,
                lambda name: {"meterName": name, "meterType": "request_count"},
                f"{meters}/{meter['meterId']}",
                "meters",
            ),
            "label": ("/api/users/me/tokens", lambda name: {"label": name}, None, "tokens"),
            # A notifier's name (an invite sign-up's `name` uses the same validator).
            "name": (
                f"{base}/notifiers",
                lambda name: {
                    "name": name,
                    "type": "email",
                    "subscribesTo": ["*"],
                    "recipients": ["a@example.test"],
                },
                None,
                "notifiers",
            ),
        },
    }


def test_every_name_field_of_the_api_is_covered_here(admin_server, world):
    document = requests.get(f"{admin_server.base_url}/api/openapi.json", timeout=30).json()
    schemas = document["components"]["schemas"]
    found = set()
    for path, operations in document["paths"].items():
        if path.startswith("/pool/"):
            continue  # seed 003's pool: `parser_name` names a registered plugin, not a free name
        for method, operation in operations.items():
            body = operation.get("requestBody") if method in ("post", "put", "patch") else None
            if not body:
                continue
            schema = body["content"]["application/json"]["schema"]
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema
            for name, prop in schema.get("properties", {}).items():
                if NAME_FIELD.search(name) and not prop.get("readOnly"):
                    found.add(name)
    assert found == set(world["fields"]), found


def listed(api: Api, create_path: str, envelope: str) -> list:
    response = api.get(create_path)
    assert response.status_code == 200, response.text
    return response.json()[envelope]


@pytest.mark.parametrize(
    "field",
    ["clientName", "credentialName", "targetName", "proxyName", "meterName", "label", "name"],
)
@pytest.mark.parametrize("char", REFUSED.values(), ids=REFUSED.keys())
def test_control_characters_in_a_name_are_400_naming_the_field(world, field, char):
    api = world["api"]
    create_path, body, update_path, envelope = world["fields"][field]
    before = listed(api, create_path, envelope)
    for name in (f"Acme{char}Corp", char, f"{char}Acme"):
        response = api.post(create_path, json=body(name))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "INVALID_INPUT"
        assert field in error_fields(response), response.text
        assert f"U+{ord(char):04X}" in response.json()["message"]
        if update_path:
            response = api.put(update_path, json={field: name})
            assert response.status_code == 400, response.text
            assert field in error_fields(response), response.text
    assert listed(api, create_path, envelope) == before  # nothing written


@pytest.mark.parametrize(
    "field",
    ["clientName", "credentialName", "targetName", "proxyName", "meterName", "label", "name"],
)
def test_names_in_any_script_are_kept_as_sent(world, field):
    api = world["api"]
    create_path, body, update_path, envelope = world["fields"][field]
    for name in ALLOWED:
        response = api.post(create_path, json=body(name))
        assert response.status_code == 201, response.text
        assert response.json()[envelope][0][field] == name
        if update_path:
            response = api.put(update_path, json={field: name})
            assert response.status_code == 200, response.text
            assert response.json()[envelope][0][field] == name


def test_the_cli_refuses_control_characters_in_a_user_name(admin_server):
    email = f"cli-{uuid.uuid4().hex[:8]}@example.test"
    # The first refusal through a real process, the others through the same `main` in this one.
    for index, char in enumerate(("\n", "\x1b", "\x85", "\u202e", "\u2028")):
        run = run_admin_cli if index == 0 else run_admin_cli_in_process
        result = run(admin_server, "create-user", email, "--name", f"Eve{char}Admin")
        assert result.returncode != 0, char
        assert "--name" in result.stderr and f"U+{ord(char):04X}" in result.stderr
    result = run_admin_cli(admin_server, "create-user", email, "--name", "Eve Admin")
    assert result.returncode == 0, result.stderr  # the refused attempts created nothing


def test_the_members_email_refuses_control_characters(world):
    api = world["api"]
    client_path = world["fields"]["clientName"][2]
    for char in ("\x00", "\n", "\x85", "\u202e"):
        response = api.post(
            f"{client_path}/members", json={"email": f"a{char}b@example.test", "roles": ["user"]}
        )
        assert response.status_code == 400, response.text
        assert "email" in error_fields(response)
