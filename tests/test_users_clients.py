"""Users, tokens, clients, configuration and members, against a real admin process."""

from __future__ import annotations

import pytest

from tests.support import Api, error_fields, new_client


def test_me_accepts_raw_and_bearer_tokens(api, owner):
    raw = api.get("/api/users/me")
    bearer = api.get("/api/users/me", headers={"Authorization": f"Bearer {owner.token}"})
    assert raw.status_code == bearer.status_code == 200
    me = raw.json()["users"][0]
    assert me == bearer.json()["users"][0]
    assert (me["userId"], me["email"], me["name"]) == (owner.id, owner.email, "Olivia Owner")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Missing user token"),
        ("u-not-a-real-token", "Invalid user token"),
        ("Bearer u-not-a-real-token", "Invalid user token"),
        ("not-even-prefixed", "Invalid user token"),
    ],
)
def test_bad_tokens_are_401(admin_server, header, message):
    headers = {"Authorization": header} if header else {}
    response = Api(admin_server.base_url, None).get("/api/clients", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert message in response.json()["message"]


def test_token_lifecycle_create_list_revoke(admin_server, make_user):
    user = make_user()
    api = Api(admin_server.base_url, user.token)
    created = api.post("/api/users/me/tokens", json={"label": "CI deploys"})
    assert created.status_code == 201
    new = created.json()["tokens"][0]
    assert new["token"].startswith("u-") and new["label"] == "CI deploys"
    assert new["hint"] == new["token"][:6] + "…"

    listed = api.get("/api/users/me/tokens").json()["tokens"]
    assert [t["label"] for t in listed] == ["User Token 1", "CI deploys"]
    assert all("token" not in t for t in listed), "a token value is shown only once"

    second = Api(admin_server.base_url, new["token"])
    assert second.get("/api/users/me").json()["users"][0]["userId"] == user.id
    revoked = api.delete(f"/api/users/me/tokens/{new['tokenId']}")
    assert revoked.status_code == 200 and revoked.json()["tokens"][0]["revoked"] is True
    refused = second.get("/api/users/me")
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]
    assert api.get("/api/users/me").status_code == 200, "the other token still works"


def test_default_token_label_counts_tokens(admin_server, make_user):
    api = Api(admin_server.base_url, make_user().token)
    created = api.post("/api/users/me/tokens", json={})
    assert created.json()["tokens"][0]["label"] == "User Token 2"


def test_token_of_another_user_cannot_be_revoked(admin_server, make_user, api):
    other = Api(admin_server.base_url, make_user().token)
    token_id = other.get("/api/users/me/tokens").json()["tokens"][0]["tokenId"]
    assert api.delete(f"/api/users/me/tokens/{token_id}").status_code == 404
    assert other.get("/api/users/me").status_code == 200


def test_token_label_is_validated(api):
    response = api.post("/api/users/me/tokens", json={"label": "", "extra": 1})
    assert response.status_code == 400
    assert set(error_fields(response)) == {"label", "extra"}


def test_client_crud(api, owner):
    created = api.post("/api/clients", json={"clientName": "My Organisation"})
    assert created.status_code == 201
    client = created.json()["clients"][0]
    assert client["clientId"].startswith("cli_") and client["sKey"] == client["clientId"]
    assert client["clientMembers"] == [{"userId": owner.id, "roles": ["owner"]}]
    assert client["configuration"]["limits"] == {"requestsPerMinute": 1000, "requestsPerDay": 20000}
    path = f"/api/clients/{client['clientId']}"

    assert api.get(path).json()["clients"][0]["clientName"] == "My Organisation"
    listed = api.get("/api/clients").json()["clients"]
    assert client["clientId"] in [c["clientId"] for c in listed]

    renamed = api.put(path, json={"clientName": "Renamed"})
    assert renamed.status_code == 200
    assert renamed.json()["clients"][0]["clientName"] == "Renamed"

    deleted = api.delete(path)
    assert deleted.json() == {"message": "Client deleted successfully"}
    assert api.get(path).status_code == 404


def test_bare_paths_serve_the_same_api(api):
    created = api.post("/clients", json={"clientName": "Bare"})
    assert created.status_code == 201
    client_id = created.json()["clients"][0]["clientId"]
    assert api.get(f"/api/clients/{client_id}").status_code == 200
    assert api.get(f"/clients/{client_id}").json() == api.get(f"/api/clients/{client_id}").json()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"clientName"}),
        ({"clientName": ""}, {"clientName"}),
        ({"clientName": 42}, {"clientName"}),
        ({"clientName": "x" * 201}, {"clientName"}),
        ({"clientName": "ok", "colour": "red"}, {"colour"}),
        (
            {"clientName": "ok", "configuration": {"limits": {"requestsPerMinute": 0}}},
            {"configuration.limits.requestsPerMinute"},
        ),
    ],
)
def test_client_create_bad_input(api, body, fields):
    response = api.post("/api/clients", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_INPUT"
    assert set(error_fields(response)) == fields


def test_configuration_limits(api, client_id):
    path = f"/api/clients/{client_id}/configuration"
    body = {"configuration": {"limits": {"requestsPerMinute": 300, "requestsPerDay": 20000}}}
    updated = api.put(path, json=body)
    assert updated.status_code == 200
    assert updated.json()["clients"][0]["configuration"]["limits"]["requestsPerMinute"] == 300

    partial = api.put(path, json={"configuration": {"limits": {"requestsPerDay": 5000}}})
    limits = partial.json()["clients"][0]["configuration"]["limits"]
    assert limits == {"requestsPerMinute": 300, "requestsPerDay": 5000}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"configuration": {"limits": {"requestsPerMinute": 1001}}}, "requestsPerMinute"),
        ({"configuration": {"limits": {"requestsPerDay": 20001}}}, "requestsPerDay"),
        ({"configuration": {"limits": {"requestsPerDay": "many"}}}, "requestsPerDay"),
        ({"configuration": {"limits": {"burst": 5}}}, "burst"),
        ({"configuration": {}}, "limits"),
        ({}, "configuration"),
    ],
)
def test_configuration_bad_input(api, client_id, body, field):
    response = api.put(f"/api/clients/{client_id}/configuration", json=body)
    assert response.status_code == 400
    assert any(name.endswith(field) for name in error_fields(response)), response.text
    current = api.get(f"/api/clients/{client_id}").json()["clients"][0]["configuration"]
    assert current["limits"] == {"requestsPerMinute": 1000, "requestsPerDay": 20000}


def test_other_tenants_clients_are_404(api, stranger, client_id):
    other = api.as_user(stranger)
    for method in ("get", "put", "delete"):
        response = getattr(other, method)(f"/api/clients/{client_id}", json={"clientName": "x"})
        assert response.status_code == 404, method
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert client_id not in [c["clientId"] for c in other.get("/api/clients").json()["clients"]]
    assert api.get(f"/api/clients/{client_id}").status_code == 200


def test_members_and_roles(api, make_user, client_id):
    member = make_user(name="Max Member")
    members = f"/api/clients/{client_id}/members"
    added = api.post(members, json={"email": member.email.upper(), "roles": ["user"]})
    assert added.status_code == 201
    listed = {m["userId"]: m["roles"] for m in api.get(members).json()["members"]}
    assert listed[member.id] == ["user"]
    as_member = api.as_user(member)

    assert as_member.get(f"/api/clients/{client_id}").status_code == 200
    assert len(as_member.get(members).json()["members"]) == 2
    for method, path, body in [
        ("put", f"/api/clients/{client_id}", {"clientName": "mine"}),
        ("post", f"/api/clients/{client_id}/credentials", {}),
        ("delete", f"/api/clients/{client_id}", None),
        ("post", members, {"email": "x@example.test", "roles": ["user"]}),
    ]:
        response = getattr(as_member, method)(path, json=body)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "FORBIDDEN"

    promoted = api.put(f"{members}/{member.id}", json={"roles": ["admin"]})
    assert promoted.json()["members"][0]["roles"] == ["admin"]
    renamed = as_member.put(f"/api/clients/{client_id}", json={"clientName": "by admin"})
    assert renamed.status_code == 200, "admins write configuration"
    assert as_member.delete(f"/api/clients/{client_id}").status_code == 403, "only owners delete"

    removed = api.delete(f"{members}/{member.id}")
    assert removed.status_code == 200
    assert as_member.get(f"/api/clients/{client_id}").status_code == 404


def test_adding_a_member_answers_alike_whether_or_not_the_email_has_an_account(
    api, make_user, client_id
):
    """Status, headers that matter and body are the same: the answer is no account oracle."""
    members = f"/api/clients/{client_id}/members"
    existing = [make_user(), make_user(), make_user()]
    answers = [
        api.post(members, json={"email": email, "roles": ["user"]})
        for email in (
            existing[0].email,
            "nobody@example.test",
            existing[1].email.upper(),
            "Nobody.Else@Example.Test",
            existing[2].email,
            "no-such-user@example.test",
        )
    ]
    first = answers[0]
    assert first.status_code == 201, first.text
    assert "If an account uses that email" in first.json()["message"]
    for answer in answers:
        assert answer.status_code == first.status_code
        assert answer.content == first.content
        assert answer.headers["Content-Type"] == first.headers["Content-Type"]
    # What happened is in the members list (where the owner sees it anyway).
    listed = {m["email"] for m in api.get(members).json()["members"]}
    assert {u.email for u in existing} <= listed
    assert not {e for e in listed if "nobody" in e.lower() or "no-such" in e}


def test_member_errors(api, owner, make_user, client_id):
    members = f"/api/clients/{client_id}/members"
    again = api.post(members, json={"email": owner.email, "roles": ["user"]})
    assert again.status_code == 409
    bad = api.post(members, json={"email": "not-an-email", "roles": ["boss"]})
    assert bad.status_code == 400
    assert set(error_fields(bad)) == {"email", "roles.0"}
    empty = api.post(members, json={"email": make_user().email, "roles": []})
    assert set(error_fields(empty)) == {"roles"}
    assert api.put(f"{members}/usr_missing", json={"roles": ["user"]}).status_code == 404


def test_last_owner_cannot_leave_or_be_demoted(api, owner, make_user, client_id):
    members = f"/api/clients/{client_id}/members"
    assert api.delete(f"{members}/{owner.id}").status_code == 409
    assert api.put(f"{members}/{owner.id}", json={"roles": ["admin"]}).status_code == 409

    second = make_user()
    api.post(members, json={"email": second.email, "roles": ["owner"]})
    assert api.put(f"{members}/{owner.id}", json={"roles": ["admin"]}).status_code == 200
    roles = {m["userId"]: m["roles"] for m in api.get(members).json()["members"]}
    assert roles == {owner.id: ["admin"], second.id: ["owner"]}
    assert api.delete(f"/api/clients/{client_id}").status_code == 403, "no longer an owner"


def test_deleting_a_client_deletes_its_configuration(api, client_id):
    base = f"/api/clients/{client_id}"
    target = api.post(
        f"{base}/targets",
        json={"targetName": "t", "targetBaseURL": "https://example.test", "targetRegion": "r1"},
    ).json()["targets"][0]
    assert api.delete(base).status_code == 200
    assert api.get(f"{base}/targets/{target['sKey']}").status_code == 404
    assert new_client(api) != client_id


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        (b"not json", "INVALID_JSON", 400),
        (b"", "INVALID_JSON", 400),
        (b"[1, 2]", "INVALID_JSON", 400),
        (b"\xff\xfe", "INVALID_JSON", 400),
        (b'{"clientName": "' + b"x" * (1024 * 1024) + b'"}', "PAYLOAD_TOO_LARGE", 413),
    ],
)
def test_malformed_bodies_are_4xx_json(api, data, code, status):
    response = api.post("/api/clients", data=data, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_unknown_routes_and_methods_answer_json(api, client_id):
    missing = api.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    wrong = api.request("PATCH", f"/api/clients/{client_id}")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert "PUT" in wrong.headers["Allow"]


def test_health_needs_no_token_and_reports_config_version(admin_server, api, client_id):
    anonymous = Api(admin_server.base_url, None)
    before = anonymous.get("/health").json()
    assert before["status"] == "ok" and before["database"] == "ok"
    assert before["version"]
    api.put(f"/api/clients/{client_id}", json={"clientName": "bump"})
    after = anonymous.get("/health").json()
    assert after["configVersion"] > before["configVersion"]
