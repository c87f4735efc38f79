"""Targets and proxies through the Core API: CRUD, validation, references, tenancy and roles."""

from __future__ import annotations

import pytest

from tests.support import (
    DROP,
    REGION,
    add_member,
    assert_error,
    assert_has,
    assert_invalid,
    assert_owned_record,
    body_with,
    create,
    error_fields,
    new_client,
    new_proxy,
    proxy_body,
    proxy_parts,
    target_body,
)

OTHER_REGION = "eu-west-1"
PREFIXES = pytest.mark.parametrize("prefix", ["/api", ""], ids=["api-prefix", "bare"])
REF_FIELDS = ("proxyProxyCredentialId", "proxyTargetId", "proxyTargetCredentialId")


def set_limits(api, client_id: str, per_minute: int, per_day: int) -> None:
    limits = {"requestsPerMinute": per_minute, "requestsPerDay": per_day}
    response = api.put(
        f"/api/clients/{client_id}/configuration", json={"configuration": {"limits": limits}}
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def targets(client_id) -> str:
    return f"/api/clients/{client_id}/targets"


@pytest.fixture
def proxies(client_id) -> str:
    return f"/api/clients/{client_id}/proxies"


@pytest.fixture
def target(api, targets) -> dict:
    return create(api, targets, target_body(), "targets")


@pytest.fixture
def proxy(api, client_id) -> dict:
    return new_proxy(api, client_id, proxyAlias="gateway")


# Targets


@PREFIXES
def test_target_create_get_list_update_delete(api, owner, client_id, prefix):
    url = f"{prefix}/clients/{client_id}/targets"
    sent = {
        "targetName": "Stripe API",
        "targetBaseURL": "https://api.stripe.com/v1",
        "targetTestPath": "/customers",
        "targetRegion": REGION,
        "targetDefaultRuleEffect": "deny",
        "targetActive": False,
    }
    response = api.post(url, json=sent)
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"targets", "message"}
    assert response.json()["message"] == "Success"
    [target] = response.json()["targets"]
    assert_has(target, sent)
    assert_owned_record(target, "target", "tgt_", client_id, owner)

    one = f"{url}/{target['targetId']}"
    assert api.get(one).json() == {"targets": [target], "message": "Success"}
    assert api.get(url).json() == {"targets": [target], "message": "Success"}

    changes = {
        "targetName": "Stripe",
        "targetBaseURL": "http://127.0.0.1:8080",
        "targetTestPath": None,
        "targetRegion": REGION,  # the same region is not a change
        "targetDefaultRuleEffect": "allow",
        "targetActive": True,
    }
    response = api.put(one, json=changes)
    assert response.status_code == 200, response.text
    [updated] = response.json()["targets"]
    assert_has(updated, changes)
    assert updated["targetCreatedAt"] == target["targetCreatedAt"]
    assert updated["targetUpdatedAt"] >= target["targetUpdatedAt"]
    assert api.get(one).json()["targets"] == [updated]

    response = api.delete(one)
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Target deleted successfully"}
    assert_error(api.get(one), 404, "NOT_FOUND")
    assert_error(api.delete(one), 404, "NOT_FOUND")
    assert api.get(url).json()["targets"] == []


def test_target_defaults(target):
    assert_has(
        target,
        {"targetActive": True, "targetDefaultRuleEffect": "allow", "targetTestPath": None},
    )


BAD_BASE_URLS = {
    "ftp-scheme": "ftp://files.example.com/pub",
    "no-scheme": "api.example.com/v1",
    "scheme-relative": "//api.example.com/v1",
    "no-host": "https:///v1",
    "port-without-host": "https://:443/v1",
    "userinfo": "https://u:p@api.example.com",
    "user-only": "https://u@api.example.com",
    "query": "https://api.example.com/v1?key=1",
    "empty-query": "https://api.example.com/v1?",
    "fragment": "https://api.example.com/v1#top",
    "inner-space": "https://api.example.com/v 1",
    "leading-space": " https://api.example.com",
    "tab": "https://api.example.com/\tv1",
    "newline": "https://api.example.com/v1\n",
    "port-0": "https://api.example.com:0",
    "port-out-of-range": "https://api.example.com:70000",
    "empty": "",
}


@pytest.mark.parametrize("url", BAD_BASE_URLS.values(), ids=BAD_BASE_URLS.keys())
def test_bad_base_url_is_refused(api, targets, target, url):
    assert_invalid(api.post(targets, json=target_body(targetBaseURL=url)), "targetBaseURL")
    one = f"{targets}/{target['targetId']}"
    assert_invalid(api.put(one, json={"targetBaseURL": url}), "targetBaseURL")
    assert api.get(one).json()["targets"] == [target]
    assert [t["targetId"] for t in api.get(targets).json()["targets"]] == [target["targetId"]]


@pytest.mark.parametrize(
    "url", ["https://api.example.com", "http://127.0.0.1:8080/base/", "HTTPS://Api.Example.com"]
)
def test_good_base_url_is_kept_as_sent(api, targets, url):
    assert create(api, targets, target_body(targetBaseURL=url), "targets")["targetBaseURL"] == url


@pytest.mark.parametrize("path", ["v1/customers", "/v1 customers", "/v1\n", "", 5])
def test_bad_test_path_is_refused(api, targets, target, path):
    assert_invalid(api.post(targets, json=target_body(targetTestPath=path)), "targetTestPath")
    one = f"{targets}/{target['targetId']}"
    assert_invalid(api.put(one, json={"targetTestPath": path}), "targetTestPath")
    assert api.get(one).json()["targets"] == [target]


def test_target_region_cannot_change(api, targets, target):
    one = f"{targets}/{target['targetId']}"
    assert_invalid(api.put(one, json={"targetRegion": OTHER_REGION}), "targetRegion")
    assert api.get(one).json()["targets"][0]["targetRegion"] == REGION
    response = api.put(one, json={"targetRegion": REGION, "targetName": "Same region"})
    assert response.status_code == 200, response.text
    assert_has(response.json()["targets"][0], {"targetRegion": REGION, "targetName": "Same region"})


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"targetName": DROP}, ["targetName"]),
        ({"targetBaseURL": DROP}, ["targetBaseURL"]),
        ({"targetRegion": DROP}, ["targetRegion"]),
        (
            {"targetName": DROP, "targetBaseURL": DROP, "targetRegion": DROP},
            ["targetName", "targetBaseURL", "targetRegion"],
        ),
        ({"targetColor": "blue"}, ["targetColor"]),
        ({"targetName": 5}, ["targetName"]),
        ({"targetName": ""}, ["targetName"]),
        ({"targetName": None}, ["targetName"]),
        ({"targetBaseURL": ["https://api.example.com"]}, ["targetBaseURL"]),
        ({"targetActive": "maybe"}, ["targetActive"]),
        ({"targetDefaultRuleEffect": "block"}, ["targetDefaultRuleEffect"]),
        ({"targetRegion": "US East"}, ["targetRegion"]),
        ({"targetRegion": 1}, ["targetRegion"]),
        ({"targetName": 5, "targetActive": "maybe"}, ["targetName", "targetActive"]),
        pytest.param(
            {"targetRegion": REGION + "\n"},
            ["targetRegion"],
            id="region-newline",
        ),
    ],
)
def test_bad_target_body_is_refused(api, targets, overrides, fields):
    assert_invalid(api.post(targets, json=body_with(target_body(), overrides)), *fields)
    assert api.get(targets).json()["targets"] == []


@pytest.mark.parametrize("data", ["not json", "[]", '"text"', ""])
def test_target_body_must_be_a_json_object(api, targets, data):
    headers = {"Content-Type": "application/json"}
    assert_error(api.post(targets, data=data, headers=headers), 400, "INVALID_JSON")
    assert api.get(targets).json()["targets"] == []


def test_target_used_by_a_proxy_cannot_be_deleted(api, targets, proxies, proxy):
    used = f"{targets}/{proxy['proxyTargetId']}"
    body = assert_error(api.delete(used), 409, "CONFLICT")
    assert body["error"]["details"]["proxies"] == [proxy["proxyId"]]
    assert api.get(used).status_code == 200

    # Once no proxy uses it any more, it can go.
    other = create(api, targets, target_body(targetName="Other"), "targets")
    response = api.put(f"{proxies}/{proxy['proxyId']}", json={"proxyTargetId": other["targetId"]})
    assert response.status_code == 200, response.text
    assert api.delete(used).json() == {"message": "Target deleted successfully"}
    assert_error(api.get(used), 404, "NOT_FOUND")


# Proxies

SEED_PROXY = {
    "proxyName": "Production Payment Gateway",
    "proxyRegion": REGION,
    "proxyActive": True,
    "proxyDefaultRuleEffect": "allow",
    "proxyAlias": "payment-gateway",
    "proxyAdditionalHeaders": {"X-Tenant": "acme", "Accept": "application/json"},
    "proxyAdditionalQueryParams": {"api-version": "2024-01"},
    "proxyAdditionalData": {"source": "portcullis", "nested": {"list": [1, "two", None]}},
    "proxyMaxRequestsPerMinute": 120,
    "proxyMaxRequestsPerDay": 5000,
}


@PREFIXES
def test_proxy_create_get_list_update_delete(api, owner, client_id, prefix):
    url = f"{prefix}/clients/{client_id}/proxies"
    parts = proxy_parts(api, client_id)
    sent = {**SEED_PROXY, **parts}
    response = api.post(url, json=sent)
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"proxies", "message"}
    assert response.json()["message"] == "Success"
    [proxy] = response.json()["proxies"]
    assert_has(proxy, sent)
    assert_owned_record(proxy, "proxy", "proxy_", client_id, owner)

    by_id, by_alias = f"{url}/{proxy['proxyId']}", f"{url}/payment-gateway"
    for one in (by_id, by_alias):
        assert api.get(one).json() == {"proxies": [proxy], "message": "Success"}
    assert api.get(url).json() == {"proxies": [proxy], "message": "Success"}

    new_parts = proxy_parts(api, client_id)
    changes = {
        "proxyName": "Updated Proxy Name",
        "proxyRegion": REGION,  # the same region is not a change
        "proxyActive": False,
        "proxyDefaultRuleEffect": "deny",
        "proxyAlias": "payments",
        "proxyAdditionalHeaders": {"X-Other": "1"},
        "proxyAdditionalQueryParams": {},
        "proxyAdditionalData": {"k": "v"},
        "proxyMaxRequestsPerMinute": 1,
        "proxyMaxRequestsPerDay": 20000,
        **new_parts,
    }
    response = api.put(by_alias, json=changes)
    assert response.status_code == 200, response.text
    [updated] = response.json()["proxies"]
    assert_has(updated, changes)
    assert updated["proxyId"] == proxy["proxyId"]
    assert updated["proxyCreatedAt"] == proxy["proxyCreatedAt"]
    assert updated["proxyUpdatedAt"] >= proxy["proxyUpdatedAt"]
    assert api.get(by_id).json()["proxies"] == [updated]
    assert api.get(f"{url}/payments").json()["proxies"] == [updated]
    assert_error(api.get(by_alias), 404, "NOT_FOUND")  # the old alias is gone

    response = api.delete(f"{url}/payments")
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Proxy deleted successfully"}
    for one in (by_id, f"{url}/payments"):
        assert_error(api.get(one), 404, "NOT_FOUND")
        assert_error(api.put(one, json={"proxyName": "x"}), 404, "NOT_FOUND")
        assert_error(api.delete(one), 404, "NOT_FOUND")
    assert api.get(url).json()["proxies"] == []


def test_proxy_can_be_deleted_by_id(api, proxies, proxy):
    one = f"{proxies}/{proxy['proxyId']}"
    assert api.delete(one).json() == {"message": "Proxy deleted successfully"}
    assert_error(api.get(one), 404, "NOT_FOUND")
    assert_error(api.get(f"{proxies}/gateway"), 404, "NOT_FOUND")


def test_proxy_defaults_and_limits_copied_from_client_configuration(api, client_id, proxies):
    set_limits(api, client_id, 37, 737)
    proxy = create(api, proxies, proxy_body(proxy_parts(api, client_id)), "proxies")
    assert_has(
        proxy,
        {
            "proxyActive": True,
            "proxyDefaultRuleEffect": "allow",
            "proxyAlias": None,
            "proxyAdditionalHeaders": {},
            "proxyAdditionalQueryParams": {},
            "proxyAdditionalData": {},
            "proxyMaxRequestsPerMinute": 37,
            "proxyMaxRequestsPerDay": 737,
        },
    )
    # Copied at creation: later configuration changes affect only new proxies.
    set_limits(api, client_id, 50, 500)
    limits = ("proxyMaxRequestsPerMinute", "proxyMaxRequestsPerDay")
    current = api.get(f"{proxies}/{proxy['proxyId']}").json()["proxies"][0]
    assert [current[k] for k in limits] == [37, 737]
    later = create(api, proxies, proxy_body(proxy_parts(api, client_id)), "proxies")
    assert [later[k] for k in limits] == [50, 500]


def test_new_client_proxies_get_the_platform_maxima(proxy):
    assert proxy["proxyMaxRequestsPerMinute"] == 1000
    assert proxy["proxyMaxRequestsPerDay"] == 20000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("proxyMaxRequestsPerMinute", 0),
        ("proxyMaxRequestsPerMinute", -1),
        ("proxyMaxRequestsPerMinute", 1001),
        ("proxyMaxRequestsPerMinute", "60"),
        ("proxyMaxRequestsPerMinute", 1.5),
        ("proxyMaxRequestsPerMinute", True),
        ("proxyMaxRequestsPerMinute", None),
        ("proxyMaxRequestsPerDay", 0),
        ("proxyMaxRequestsPerDay", 20001),
        ("proxyMaxRequestsPerDay", "100"),
    ],
)
def test_proxy_limit_out_of_bounds_is_refused(api, client_id, proxies, proxy, field, value):
    body = proxy_body(proxy_parts(api, client_id), **{field: value})
    assert_invalid(api.post(proxies, json=body), field)
    one = f"{proxies}/{proxy['proxyId']}"
    assert_invalid(api.put(one, json={field: value}), field)
    assert api.get(proxies).json()["proxies"] == [proxy]


@pytest.mark.parametrize(("per_minute", "per_day"), [(1, 1), (1000, 20000)])
def test_proxy_limits_at_the_bounds_are_accepted(api, client_id, per_minute, per_day):
    limits = {"proxyMaxRequestsPerMinute": per_minute, "proxyMaxRequestsPerDay": per_day}
    assert_has(new_proxy(api, client_id, **limits), limits)


BAD_ALIASES = [
    "Payment-Gateway",
    "payment_gateway",
    "-pay",
    "pay-",
    "pay gw",
    "pay.gw",
    "päy",
    "",
    "a" * 64,
    42,
    pytest.param("pay\n", id="trailing-newline"),
]


@pytest.mark.parametrize("alias", BAD_ALIASES)
def test_invalid_alias_is_refused(api, client_id, proxies, proxy, alias):
    body = proxy_body(proxy_parts(api, client_id), proxyAlias=alias)
    assert_invalid(api.post(proxies, json=body), "proxyAlias")
    assert_invalid(
        api.put(f"{proxies}/{proxy['proxyId']}", json={"proxyAlias": alias}), "proxyAlias"
    )
    assert api.get(proxies).json()["proxies"] == [proxy]


@pytest.mark.parametrize("alias", ["a", "7", "a" * 63, "0-0", "payment-gateway-2"])
def test_valid_alias_is_accepted_and_usable(api, client_id, proxies, alias):
    proxy = new_proxy(api, client_id, proxyAlias=alias)
    assert proxy["proxyAlias"] == alias
    assert api.get(f"{proxies}/{alias}").json()["proxies"] == [proxy]


def test_alias_is_unique_within_a_client(api, client_id, proxies, proxy):
    body = proxy_body(proxy_parts(api, client_id), proxyAlias="gateway")
    response = api.post(proxies, json=body)
    assert_error(response, 409, "CONFLICT")
    assert "proxyAlias" in error_fields(response)
    assert api.get(proxies).json()["proxies"] == [proxy]

    second = new_proxy(api, client_id, proxyAlias="second")
    response = api.put(f"{proxies}/{second['proxyId']}", json={"proxyAlias": "gateway"})
    assert_error(response, 409, "CONFLICT")
    assert "proxyAlias" in error_fields(response)
    assert api.get(f"{proxies}/second").json()["proxies"] == [second]
    assert api.get(f"{proxies}/gateway").json()["proxies"] == [proxy]

    # Re-sending a proxy's own alias is not a conflict.
    response = api.put(f"{proxies}/gateway", json={"proxyAlias": "gateway", "proxyName": "Same"})
    assert response.status_code == 200, response.text

    # Clearing an alias frees it.
    response = api.put(f"{proxies}/gateway", json={"proxyAlias": None})
    assert response.status_code == 200, response.text
    assert response.json()["proxies"][0]["proxyAlias"] is None
    assert_error(api.get(f"{proxies}/gateway"), 404, "NOT_FOUND")
    response = api.put(f"{proxies}/second", json={"proxyAlias": "gateway"})
    assert response.status_code == 200, response.text
    assert api.get(f"{proxies}/gateway").json()["proxies"][0]["proxyId"] == second["proxyId"]


def test_same_alias_in_another_client(api, client_id, proxies, proxy):
    other_id = new_client(api, "Other")
    other = new_proxy(api, other_id, proxyAlias="gateway")
    assert other["proxyAlias"] == "gateway"
    assert api.get(f"{proxies}/gateway").json()["proxies"] == [proxy]
    assert api.get(f"/api/clients/{other_id}/proxies/gateway").json()["proxies"] == [other]
    assert api.delete(f"/api/clients/{other_id}/proxies/gateway").status_code == 200
    assert api.get(f"{proxies}/gateway").json()["proxies"] == [proxy]


REFERENCE_SOURCES = ["other-client", "stranger-client", "other-region", "wrong-kind", "unknown"]


def bad_reference(api, stranger, client_id: str, field: str, source: str) -> str:
    """An id for `field` that this client's proxies must not use."""
    if source == "other-client":
        return proxy_parts(api, new_client(api, "Other"))[field]
    if source == "stranger-client":
        theirs = api.as_user(stranger)
        return proxy_parts(theirs, new_client(theirs, "Theirs"))[field]
    if source == "other-region":
        return proxy_parts(api, client_id, OTHER_REGION)[field]
    if source == "wrong-kind":
        parts = proxy_parts(api, client_id)
        swapped = {
            "proxyProxyCredentialId": parts["proxyTargetCredentialId"],
            "proxyTargetCredentialId": parts["proxyProxyCredentialId"],
            "proxyTargetId": parts["proxyTargetCredentialId"],
        }
        return swapped[field]
    return "tgt_0000000000000000" if field == "proxyTargetId" else "cred_0000000000000000"


@pytest.mark.parametrize("source", REFERENCE_SOURCES)
@pytest.mark.parametrize("field", REF_FIELDS)
def test_bad_reference_is_refused(api, stranger, client_id, proxies, proxy, field, source):
    bad = bad_reference(api, stranger, client_id, field, source)
    body = proxy_body(proxy_parts(api, client_id), **{field: bad})
    assert_invalid(api.post(proxies, json=body), field)
    assert_invalid(api.put(f"{proxies}/{proxy['proxyId']}", json={field: bad}), field)
    assert api.get(proxies).json()["proxies"] == [proxy]


def test_proxy_region_must_match_its_components(api, client_id, proxies):
    body = proxy_body(proxy_parts(api, client_id), proxyRegion=OTHER_REGION)
    response = api.post(proxies, json=body)
    assert_invalid(response)
    assert set(error_fields(response)) <= set(REF_FIELDS)
    # All in the other region is fine.
    body = proxy_body(proxy_parts(api, client_id, OTHER_REGION), proxyRegion=OTHER_REGION)
    assert create(api, proxies, body, "proxies")["proxyRegion"] == OTHER_REGION


def test_proxy_region_cannot_change(api, proxies, proxy):
    one = f"{proxies}/{proxy['proxyId']}"
    assert_invalid(api.put(one, json={"proxyRegion": OTHER_REGION}), "proxyRegion")
    assert api.get(one).json()["proxies"] == [proxy]
    response = api.put(one, json={"proxyRegion": REGION, "proxyName": "Same region"})
    assert response.status_code == 200, response.text
    assert_has(response.json()["proxies"][0], {"proxyRegion": REGION, "proxyName": "Same region"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("proxyAdditionalHeaders", {"Connection": "close"}),
        ("proxyAdditionalHeaders", {"connection": "keep-alive"}),
        ("proxyAdditionalHeaders", {"Host": "evil.example"}),
        ("proxyAdditionalHeaders", {"HOST": "evil.example"}),
        ("proxyAdditionalHeaders", {"Transfer-Encoding": "chunked"}),
        ("proxyAdditionalHeaders", {"Content-Length": "10"}),
        ("proxyAdditionalHeaders", {"Upgrade": "websocket"}),
        ("proxyAdditionalHeaders", {"X-Ok": "1", "Keep-Alive": "timeout=5"}),
        ("proxyAdditionalHeaders", {"Bad Name": "x"}),
        ("proxyAdditionalHeaders", {"X:Colon": "x"}),
        ("proxyAdditionalHeaders", {"": "x"}),
        ("proxyAdditionalHeaders", {"X-Ok": "a\r\nInjected: 1"}),
        ("proxyAdditionalHeaders", {"X-Number": 5}),
        ("proxyAdditionalHeaders", ["X-Ok"]),
        pytest.param("proxyAdditionalHeaders", {"X-Ok\n": "1"}, id="header-newline"),
        ("proxyAdditionalQueryParams", {"": "x"}),
        ("proxyAdditionalQueryParams", {"page": 2}),
        ("proxyAdditionalQueryParams", "page=2"),
        ("proxyAdditionalData", "text"),
        ("proxyAdditionalData", [1, 2]),
    ],
)
def test_bad_additional_values_are_refused(api, client_id, proxies, proxy, field, value):
    body = proxy_body(proxy_parts(api, client_id), **{field: value})
    assert_invalid(api.post(proxies, json=body), field)
    assert_invalid(api.put(f"{proxies}/{proxy['proxyId']}", json={field: value}), field)
    assert api.get(proxies).json()["proxies"] == [proxy]


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        *(({field: DROP}, [field]) for field in ("proxyName", "proxyRegion", *REF_FIELDS)),
        ({"proxyColor": "blue"}, ["proxyColor"]),
        ({"proxyName": 5}, ["proxyName"]),
        ({"proxyName": ""}, ["proxyName"]),
        ({"proxyActive": "maybe"}, ["proxyActive"]),
        ({"proxyDefaultRuleEffect": "block"}, ["proxyDefaultRuleEffect"]),
        ({"proxyRegion": "US-East-1"}, ["proxyRegion"]),
        ({"proxyTargetId": 123}, ["proxyTargetId"]),
        ({"proxyName": DROP, "proxyActive": "maybe"}, ["proxyName", "proxyActive"]),
    ],
)
def test_bad_proxy_body_is_refused(api, client_id, proxies, overrides, fields):
    body = body_with(proxy_body(proxy_parts(api, client_id)), overrides)
    assert_invalid(api.post(proxies, json=body), *fields)
    assert api.get(proxies).json()["proxies"] == []


def test_fetched_proxy_can_be_put_back(api, proxies, proxy):
    """Read-only fields (keys, ids, timestamps) in a PUT body are ignored, not refused."""
    one = f"{proxies}/{proxy['proxyId']}"
    fetched = api.get(one).json()["proxies"][0]
    response = api.put(one, json={**fetched, "proxyName": "Renamed"})
    assert response.status_code == 200, response.text
    assert response.json()["proxies"][0] == {
        **proxy,
        "proxyName": "Renamed",
        "proxyUpdatedAt": response.json()["proxies"][0]["proxyUpdatedAt"],
    }


# Tenancy and roles


def test_records_are_invisible_to_a_stranger(api, stranger, client_id, targets, proxies, proxy):
    theirs = api.as_user(stranger)
    target_url = f"{targets}/{proxy['proxyTargetId']}"
    proxy_url = f"{proxies}/{proxy['proxyId']}"
    attempts = [
        ("GET", targets, None),
        ("POST", targets, target_body()),
        ("GET", target_url, None),
        ("PUT", target_url, {"targetName": "Mine now"}),
        ("DELETE", target_url, None),
        ("GET", proxies, None),
        ("POST", proxies, proxy_body(proxy_parts(api, client_id))),
        ("GET", proxy_url, None),
        ("GET", f"{proxies}/gateway", None),
        ("PUT", proxy_url, {"proxyName": "Mine now"}),
        ("PUT", f"{proxies}/gateway", {"proxyActive": False}),
        ("DELETE", proxy_url, None),
        ("DELETE", f"/clients/{client_id}/proxies/gateway", None),
    ]
    before = api.get(targets).json(), api.get(proxies).json()
    for method, path, body in attempts:
        assert_error(theirs.request(method, path, json=body), 404, "NOT_FOUND")
    assert (api.get(targets).json(), api.get(proxies).json()) == before
    assert before[1]["proxies"] == [proxy]


def test_records_are_not_found_under_another_client(api, proxy):
    other = new_client(api, "Other")
    for path in (
        f"/api/clients/{other}/proxies/{proxy['proxyId']}",
        f"/api/clients/{other}/proxies/gateway",
        f"/api/clients/{other}/targets/{proxy['proxyTargetId']}",
    ):
        assert_error(api.get(path), 404, "NOT_FOUND")
        assert_error(api.put(path, json={}), 404, "NOT_FOUND")
        assert_error(api.delete(path), 404, "NOT_FOUND")
    assert api.get(f"/api/clients/{proxy['clientId']}/proxies/gateway").status_code == 200


def test_user_role_can_read_but_not_write(api, make_user, client_id, targets, proxies, proxy):
    member = make_user()
    add_member(api, client_id, member, "user")
    theirs = api.as_user(member)
    target_url = f"{targets}/{proxy['proxyTargetId']}"
    target = api.get(target_url).json()["targets"][0]

    assert theirs.get(proxies).json()["proxies"] == [proxy]
    assert theirs.get(f"{proxies}/gateway").json()["proxies"] == [proxy]
    assert theirs.get(f"/clients/{client_id}/proxies/{proxy['proxyId']}").status_code == 200
    assert theirs.get(target_url).json()["targets"] == [target]
    assert theirs.get(targets).json()["targets"] == [target]

    writes = [
        ("POST", targets, target_body()),
        ("PUT", target_url, {"targetName": "Changed"}),
        ("DELETE", target_url, None),
        ("POST", proxies, proxy_body(proxy_parts(api, client_id), proxyAlias="mine")),
        ("PUT", f"{proxies}/gateway", {"proxyActive": False}),
        ("DELETE", f"{proxies}/{proxy['proxyId']}", None),
        ("DELETE", f"/clients/{client_id}/proxies/gateway", None),
    ]
    for method, path, body in writes:
        assert_error(theirs.request(method, path, json=body), 403, "FORBIDDEN")
    assert api.get(proxies).json()["proxies"] == [proxy]
    assert api.get(target_url).json()["targets"] == [target]


def test_admin_role_can_write(api, make_user, client_id, proxies, proxy):
    member = make_user()
    add_member(api, client_id, member, "admin")
    theirs = api.as_user(member)
    created = new_proxy(theirs, client_id, proxyAlias="admins")
    assert created["userId"] == member.id
    assert theirs.put(f"{proxies}/gateway", json={"proxyActive": False}).status_code == 200
    assert theirs.delete(f"{proxies}/admins").json() == {"message": "Proxy deleted successfully"}
    assert [p["proxyActive"] for p in api.get(proxies).json()["proxies"]] == [False]
