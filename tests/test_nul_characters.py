"""NUL characters never reach the store: PostgreSQL cannot keep them in text or JSON.

Any key or string value holding U+0000, at any depth of a Core API body, and
any query parameter holding it, is a 400 that names the field; nothing is written.
"""

from __future__ import annotations

import pytest

from tests.support import assert_invalid, credential_body, new_client, proxy_body, proxy_parts


def test_a_nul_anywhere_in_a_body_is_refused_by_name(api):
    client_id = new_client(api, "Nul")
    base = f"/api/clients/{client_id}"
    parts = proxy_parts(api, client_id)
    cases = {
        "credentials": (
            credential_body(credentialSecret={"key": "X-API-Key", "value": "a\x00b"}),
            "credentialSecret.value",
        ),
        "proxies": (
            proxy_body(parts, proxyAdditionalData={"nested": [{"ok": "x"}, {"bad": "\x00"}]}),
            "proxyAdditionalData.nested.1.bad",
        ),
        "targets": (
            {"targetName": "t", "targetBaseURL": "https://example.com", "tar\x00get": 1},
            "tar\x00get",
        ),
    }
    for resource, (body, field) in cases.items():
        before = api.get(f"{base}/{resource}").json()[resource]
        assert_invalid(api.post(f"{base}/{resource}", json=body), field)
        assert api.get(f"{base}/{resource}").json()[resource] == before, "nothing written"


@pytest.mark.parametrize("query", ["limit=%00", "st%00atus=queued"])
def test_a_nul_in_a_query_parameter_is_refused_by_name(api, query):
    client_id = new_client(api, "Nul query")
    response = api.get(f"/api/clients/{client_id}/credentials?{query}")
    assert_invalid(response, query.split("=")[0].replace("%00", "\x00"))
