"""Schemathesis fuzzes every documented operation with valid and invalid input.

Whatever it sends, the admin must answer with a status below 500 and a JSON
body. Path parameters point at real records (so bodies reach validation,
not just a 404). DELETEs are left out: they would empty the fixture data,
and each one is tested directly elsewhere.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.support import Api, create, credential_body, new_client, proxy_body, proxy_parts


@pytest.fixture(scope="module")
def real_ids(admin_server, make_user) -> dict:
    user = make_user()
    api = Api(admin_server.base_url, user.token)
    client_id = new_client(api, "Fuzzing")
    parts = proxy_parts(api, client_id)
    base = f"/api/clients/{client_id}"
    proxy = create(api, f"{base}/proxies", proxy_body(parts), "proxies")
    rule = create(api, f"{base}/proxies/{proxy['sKey']}/rules", {"effect": "allow"}, "rules")
    spare = create(api, f"{base}/credentials", credential_body(), "credentials")
    token_id = api.get("/api/users/me/tokens").json()["tokens"][0]["tokenId"]
    return {
        "token": user.token,
        "path": {
            "clientId": client_id,
            "credentialId": spare["sKey"],
            "targetId": parts["proxyTargetId"],
            "proxyId": proxy["sKey"],
            "parentId": proxy["sKey"],
            "ruleId": rule["sKey"],
            "userId": user.id,
            "tokenId": token_id,
        },
    }


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_input_causes_a_server_error(admin_server, real_ids, mode):
    document = requests.get(f"{admin_server.base_url}/api/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.method.upper() != "DELETE"]
    assert len(operations) > 30
    for operation in operations:
        path_parameters = {
            p.name: real_ids["path"][p.name]
            for p in operation.path_parameters
            if p.name in real_ids["path"]
        }
        strategy = operation.as_strategy(
            generation_mode=GenerationMode(mode), path_parameters=path_parameters
        )
        try:
            _check_operation(strategy, admin_server.base_url, real_ids["token"])
        except Unsatisfiable:
            # Nothing to make invalid (no parameters, no body): covered by the positive run.
            assert mode == "negative", operation.label


def _check_operation(strategy, base_url: str, token: str) -> None:
    @given(case=strategy)
    @settings(
        max_examples=20,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(base_url=base_url, headers={"Authorization": token})
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        content_type = str(response.headers.get("content-type", ""))
        assert "application/json" in content_type, (case.as_curl_command(), response.headers)

    run()
