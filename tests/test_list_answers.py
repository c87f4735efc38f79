"""Lists answer each record exactly as reading it alone does (the list is dumped from plain
rows for speed, the single record by the schema): same keys, order, values, JSON text."""

from __future__ import annotations

import json

from tests.support import create, credential_body, new_proxy, proxy_body, proxy_parts, target_body


def test_a_proxy_list_holds_each_proxy_exactly_as_read_alone(api, client_id):
    proxies = f"/api/clients/{client_id}/proxies"
    varied = [
        new_proxy(api, client_id),
        new_proxy(
            api,
            client_id,
            proxyAlias="p-alias",
            proxyActive=False,
            proxyDefaultRuleEffect="deny",
            proxyAdditionalHeaders={"X-One": "caf\u00e9 \u2603", "X-Two": ""},
            proxyAdditionalQueryParams={"q": "1", "\u00fc": "\u00fc"},
            proxyAdditionalData={"nested": {"list": [1, 2.5, None, True]}, "n": 0},
            proxyMaxRequestsPerMinute=7,
            proxyMaxRequestsPerDay=70,
        ),
    ]
    parts = proxy_parts(api, client_id)
    varied.append(create(api, proxies, proxy_body(parts, proxyName="Name \u00e9"), "proxies"))
    updated = api.put(f"{proxies}/{varied[0]['sKey']}", json={"proxyAdditionalData": {"a": []}})
    assert updated.status_code == 200, updated.text

    listed = api.get(proxies)
    assert listed.status_code == 200
    items = json.loads(listed.text)["proxies"]
    assert [item["sKey"] for item in items] == [p["sKey"] for p in varied]
    for item in items:
        alone = api.get(f"{proxies}/{item['sKey']}")
        assert alone.status_code == 200
        assert list(item) == list(alone.json()["proxies"][0]), "same keys in the same order"
        assert item == alone.json()["proxies"][0]
        # Same bytes: the list's record text appears verbatim in the answer alone.
        text = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
        assert text in alone.text and text in listed.text


def assert_list_matches_reads(api, collection: str, envelope: str, ids: list[str], **params):
    listed = api.get(collection, params=params)
    assert listed.status_code == 200, listed.text
    items = listed.json()[envelope]
    assert [item["sKey"] for item in items] == ids
    for item in items:
        alone = api.get(f"{collection}/{item['sKey']}")
        assert alone.status_code == 200, alone.text
        record = alone.json()[envelope][0]
        assert list(item) == list(record) and item == record
        text = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
        assert text in alone.text and text in listed.text


def test_target_and_credential_lists_hold_each_record_exactly_as_read_alone(api, client_id):
    base = f"/api/clients/{client_id}"
    targets = [
        create(api, f"{base}/targets", target_body(), "targets")["sKey"],
        create(
            api,
            f"{base}/targets",
            target_body(
                targetName="Caf\u00e9 \u2603",
                targetTestPath="/health",
                targetActive=False,
                targetDefaultRuleEffect="deny",
            ),
            "targets",
        )["sKey"],
    ]
    assert_list_matches_reads(api, f"{base}/targets", "targets", targets)
    credentials = [
        create(api, f"{base}/credentials", credential_body(), "credentials")["sKey"],
        create(api, f"{base}/credentials", credential_body("target", "basicAuth"), "credentials")[
            "sKey"
        ],
        create(api, f"{base}/credentials", credential_body("target", "none"), "credentials")[
            "sKey"
        ],
    ]
    assert_list_matches_reads(api, f"{base}/credentials", "credentials", credentials)
    assert_list_matches_reads(
        api, f"{base}/credentials", "credentials", credentials, includeTemporary="true"
    )


def test_numbers_beyond_64_bits_in_stored_json_come_back_exactly(api, client_id):
    """The fast encoder refuses them; the answer falls back to the standard one, never a 500."""
    data = {"big": 2**70 + 1, "negative": -(2**65) - 3, "small": 5}  # not exact as floats
    made = new_proxy(api, client_id, proxyAdditionalData=data)
    proxies = f"/api/clients/{client_id}/proxies"
    alone = api.get(f"{proxies}/{made['sKey']}")
    assert alone.status_code == 200, alone.text
    assert alone.json()["proxies"][0]["proxyAdditionalData"] == data
    listed = api.get(proxies)
    assert listed.status_code == 200, listed.text
    [item] = [p for p in listed.json()["proxies"] if p["sKey"] == made["sKey"]]
    assert item["proxyAdditionalData"] == data
