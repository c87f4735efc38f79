"""Payload filters through the Core API: CRUD at every scope, validation, tenancy, cascades."""

from __future__ import annotations

import pytest

from tests.support import assert_error, assert_invalid, create, new_proxy, target_body

SCOPES = ("proxyCredential", "targetCredential", "proxy", "target")
OUTPUT_FIELDS = {
    "filterId",
    "sKey",
    "pKey",
    "parentId",
    "clientId",
    "userId",
    "filterScope",
    "action",
    "paths",
    "notes",
    "filterCreatedAt",
    "filterUpdatedAt",
}


def parent_ids(proxy: dict) -> dict[str, str]:
    return {
        "proxyCredential": proxy["proxyProxyCredentialId"],
        "targetCredential": proxy["proxyTargetCredentialId"],
        "proxy": proxy["sKey"],
        "target": proxy["proxyTargetId"],
    }


def filters_path(client_id: str, scope: str, parent_id: str, prefix: str = "/api") -> str:
    plural = {"proxy": "proxies", "target": "targets"}.get(scope, "credentials")
    return f"{prefix}/clients/{client_id}/{plural}/{parent_id}/filters"


@pytest.fixture
def proxy(api, client_id) -> dict:
    return new_proxy(api, client_id)


@pytest.fixture
def filters(api, client_id) -> str:
    target = create(api, f"/api/clients/{client_id}/targets", target_body(), "targets")
    return filters_path(client_id, "target", target["sKey"])


@pytest.mark.parametrize("scope", SCOPES)
def test_filter_lifecycle_on_every_scope(api, owner, client_id, proxy, scope):
    parent_id = parent_ids(proxy)[scope]
    path = filters_path(client_id, scope, parent_id)
    assert api.get(path).json()["filters"] == []

    created = create(api, path, {"action": "destroy", "paths": ["card.number"]}, "filters")
    assert set(created) == OUTPUT_FIELDS
    assert created["filterId"].startswith("filt_") and created["sKey"] == created["filterId"]
    assert created["filterScope"] == scope
    assert created["pKey"] == created["parentId"] == parent_id
    assert created["clientId"] == client_id and created["userId"] == owner.id
    assert (created["action"], created["paths"], created["notes"]) == (
        "destroy",
        ["card.number"],
        None,
    )
    item = f"{path}/{created['filterId']}"
    assert api.get(item).json()["filters"] == [created]
    assert api.get(filters_path(client_id, scope, parent_id, "")).json()["filters"] == [created]

    second = create(api, path, {"action": "retain", "paths": ["id", "items.*.sku"]}, "filters")
    assert [f["filterId"] for f in api.get(path).json()["filters"]] == [
        created["filterId"],
        second["filterId"],
    ]

    updated = api.put(item, json={"action": "retain", "notes": "only ids"})
    assert updated.status_code == 200, updated.text
    (record,) = updated.json()["filters"]
    assert (record["action"], record["paths"], record["notes"]) == (
        "retain",
        ["card.number"],
        "only ids",
    )
    deleted = api.delete(item)
    assert deleted.status_code == 200, deleted.text
    assert_error(api.get(item), 404, "NOT_FOUND")
    assert [f["filterId"] for f in api.get(path).json()["filters"]] == [second["filterId"]]


BAD_BODIES = {
    "no-action": ({"paths": ["a"]}, "action"),
    "unknown-action": ({"action": "keep", "paths": ["a"]}, "action"),
    "action-not-string": ({"action": 1, "paths": ["a"]}, "action"),
    "no-paths": ({"action": "retain"}, "paths"),
    "paths-empty": ({"action": "retain", "paths": []}, "paths"),
    "paths-string": ({"action": "retain", "paths": "a.b"}, "paths"),
    "paths-null": ({"action": "retain", "paths": None}, "paths"),
    "path-number": ({"action": "retain", "paths": ["a", 3]}, "paths.1"),
    "path-empty": ({"action": "retain", "paths": [""]}, "paths.0"),
    "path-double-dot": ({"action": "destroy", "paths": ["ok", "a..b"]}, "paths.1"),
    "path-mixed-star": ({"action": "destroy", "paths": ["it*ems"]}, "paths.0"),
    "path-bad-escape": ({"action": "destroy", "paths": ["a\\n"]}, "paths.0"),
    "too-many-paths": ({"action": "destroy", "paths": ["a"] * 101}, "paths"),
    "notes-type": ({"action": "destroy", "paths": ["a"], "notes": 5}, "notes"),
    "unknown-field": ({"action": "destroy", "paths": ["a"], "scope": "x"}, "scope"),
}


@pytest.mark.parametrize(("body", "field"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_filter_bodies_are_refused_naming_the_field(api, filters, body, field):
    assert_invalid(api.post(filters, json=body), field)
    assert api.get(filters).json()["filters"] == []


def test_bad_path_message_says_what_is_wrong(api, filters):
    response = api.post(filters, json={"action": "retain", "paths": ["a..b"]})
    assert_invalid(response, "paths")
    messages = str(response.json()["error"]["details"]["fields"])
    assert "empty segment" in messages


@pytest.mark.parametrize("data", ["", "not json", "[]", '{"action": "retain"'])
def test_non_json_body_is_invalid_json(api, filters, data):
    response = api.post(filters, data=data, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "INVALID_JSON")


@pytest.mark.parametrize(
    ("body", "field"),
    [({"paths": ["x..y"]}, "paths"), ({"action": "both"}, "action"), ({"paths": []}, "paths")],
)
def test_bad_update_is_refused_and_leaves_the_filter_unchanged(api, filters, body, field):
    created = create(api, filters, {"action": "destroy", "paths": ["a.b"]}, "filters")
    item = f"{filters}/{created['filterId']}"
    assert_invalid(api.put(item, json=body), field)
    assert api.get(item).json()["filters"] == [created]


def test_escaped_paths_are_stored_as_given(api, filters):
    paths = ["a\\.b", "\\*", "items.*.sku", "list.0"]
    created = create(api, filters, {"action": "retain", "paths": paths}, "filters")
    assert created["paths"] == paths


def test_filter_under_another_parent_is_not_found(api, client_id, proxy):
    ids = parent_ids(proxy)
    path = filters_path(client_id, "proxy", ids["proxy"])
    created = create(api, path, {"action": "destroy", "paths": ["a"]}, "filters")
    other = filters_path(client_id, "target", ids["target"])
    assert_error(api.get(f"{other}/{created['filterId']}"), 404, "NOT_FOUND")
    assert_error(api.delete(f"{other}/{created['filterId']}"), 404, "NOT_FOUND")


@pytest.mark.parametrize("scope", SCOPES)
def test_stranger_sees_nothing_and_user_role_cannot_write(
    api, stranger, make_user, client_id, proxy, scope
):
    path = filters_path(client_id, scope, parent_ids(proxy)[scope])
    created = create(api, path, {"action": "destroy", "paths": ["a"]}, "filters")
    item = f"{path}/{created['filterId']}"
    body = {"action": "retain", "paths": ["b"]}
    as_stranger = api.as_user(stranger)
    for response in (
        as_stranger.get(path),
        as_stranger.post(path, json=body),
        as_stranger.get(item),
        as_stranger.put(item, json=body),
        as_stranger.delete(item),
    ):
        assert_error(response, 404, "NOT_FOUND")

    member = make_user()
    added = api.post(
        f"/api/clients/{client_id}/members", json={"email": member.email, "roles": ["user"]}
    )
    assert added.status_code in (200, 201), added.text
    as_member = api.as_user(member)
    assert as_member.get(item).json()["filters"] == [created]
    assert_error(as_member.post(path, json=body), 403, "FORBIDDEN")
    assert_error(as_member.put(item, json=body), 403, "FORBIDDEN")
    assert_error(as_member.delete(item), 403, "FORBIDDEN")
    assert_error(api.as_user(None).get(path), 401, "UNAUTHORIZED")
    assert api.get(path).json()["filters"] == [created]


@pytest.mark.parametrize("kind", ["proxies", "credentials", "targets"])
def test_deleting_a_parent_removes_its_filters(api, client_id, kind):
    proxy = new_proxy(api, client_id)
    if kind == "proxies":
        parent_id = proxy["sKey"]
    else:
        # Delete the proxy first: credentials and targets in use cannot be deleted.
        parent_id = proxy["proxyTargetId" if kind == "targets" else "proxyTargetCredentialId"]
    base = f"/api/clients/{client_id}/{kind}"
    path = f"{base}/{parent_id}/filters"
    created = create(api, path, {"action": "destroy", "paths": ["a"]}, "filters")
    if kind != "proxies":
        assert api.delete(f"/api/clients/{client_id}/proxies/{proxy['sKey']}").status_code == 200
    deleted = api.delete(f"{base}/{parent_id}")
    assert deleted.status_code == 200, deleted.text
    assert_error(api.get(path), 404, "NOT_FOUND")
    assert_error(api.get(f"{path}/{created['filterId']}"), 404, "NOT_FOUND")
