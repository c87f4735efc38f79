"""The Python samples of the Proxies API page (seed 000) and the Requests API page (seed 001)
run unchanged against a live admin.

Each sample is kept verbatim; only the host and the placeholder ids are substituted before
it runs in a subprocess with `USER_TOKEN` set, as a reader of the docs would run it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.proxy_support import CALLER_KEY, call, logged
from tests.support import REGION, new_proxy, proxy_parts

SEED_HOST = "https://api.requestrocket.com"
SEED_FILES = sorted(Path("/work/shared/seeds").glob("000_*.txt"))
REQUESTS_SEED_FILES = sorted(Path("/work/shared/seeds").glob("001_*.txt"))
PLACEHOLDERS = (
    "your-client-id",
    "your-proxy-id",
    "your-request-id",
    "cred_123",
    "tgt_456",
    "cred_789",
)

LIST_PROXIES = """\
import requests
import os

client_id = "your-client-id"

response = requests.get(
    f'https://api.requestrocket.com/api/clients/{client_id}/proxies',
    headers={'Authorization': os.getenv('USER_TOKEN')}
)

data = response.json()
print(f"Found {len(data['proxies'])} proxies")
"""

CREATE_PROXY = """\
import requests
import os

client_id = "your-client-id"

response = requests.post(
    f'https://api.requestrocket.com/api/clients/{client_id}/proxies',
    headers={'Authorization': os.getenv('USER_TOKEN')},
    json={
        'proxyName': 'Production Payment Gateway',
        'proxyRegion': 'us-east-1',
        'proxyProxyCredentialId': 'cred_123',
        'proxyTargetId': 'tgt_456',
        'proxyTargetCredentialId': 'cred_789',
        'proxyActive': True,
        'proxyDefaultRuleEffect': 'allow',
        'proxyAlias': 'payment-gateway'
    }
)

data = response.json()
print(f"Created proxy: {data['proxies'][0]['proxyName']}")
"""

GET_PROXY = """\
import requests
import os

client_id = "your-client-id"
proxy_id = "your-proxy-id"

response = requests.get(
    f'https://api.requestrocket.com/api/clients/{client_id}/proxies/{proxy_id}',
    headers={'Authorization': os.getenv('USER_TOKEN')}
)

data = response.json()
print(f"Proxy: {data['proxies'][0]['proxyName']}")
"""

UPDATE_PROXY = """\
import requests
import os

client_id = "your-client-id"
proxy_id = "your-proxy-id"

response = requests.put(
    f'https://api.requestrocket.com/api/clients/{client_id}/proxies/{proxy_id}',
    headers={'Authorization': os.getenv('USER_TOKEN')},
    json={
        'proxyName': 'Updated Proxy Name',
        'proxyActive': False
    }
)

data = response.json()
print(f"Updated: {data['message']}")
"""

DELETE_PROXY = """\
import requests
import os

client_id = "your-client-id"
proxy_id = "your-proxy-id"

response = requests.delete(
    f'https://api.requestrocket.com/api/clients/{client_id}/proxies/{proxy_id}',
    headers={'Authorization': os.getenv('USER_TOKEN')}
)

data = response.json()
print(data['message'])
"""

# The page's JavaScript "Complete Setup Example", line for line in Python with `requests`.
COMPLETE_SETUP = """\
import json
import os

import requests


def setup_complete_proxy(client_id, user_token):
    # 1. Create proxy credential
    proxy_cred = requests.post(
        f'https://api.requestrocket.com/api/clients/{client_id}/credentials',
        headers={
            'Authorization': user_token,
            'Content-Type': 'application/json'
        },
        json={
            'credentialName': 'App API Key',
            'credentialType': 'proxy',
            'credentialAuthType': 'key',
            'credentialRegion': 'us-east-1',
            'credentialSecret': {'key': 'X-API-Key', 'value': 'app-key', 'addToHeader': True}
        }
    ).json()

    # 2. Create target credential
    target_cred = requests.post(
        f'https://api.requestrocket.com/api/clients/{client_id}/credentials',
        headers={
            'Authorization': user_token,
            'Content-Type': 'application/json'
        },
        json={
            'credentialName': 'Stripe Token',
            'credentialType': 'target',
            'credentialAuthType': 'bearer',
            'credentialRegion': 'us-east-1',
            'credentialSecret': {'token': os.environ['STRIPE_KEY'], 'addToHeader': True}
        }
    ).json()

    # 3. Create target
    target = requests.post(
        f'https://api.requestrocket.com/api/clients/{client_id}/targets',
        headers={
            'Authorization': user_token,
            'Content-Type': 'application/json'
        },
        json={
            'targetName': 'Stripe API',
            'targetRegion': 'us-east-1',
            'targetBaseURL': 'https://api.stripe.com',
            'targetTestPath': '/v1/customers'
        }
    ).json()

    # 4. Create proxy
    proxy = requests.post(
        f'https://api.requestrocket.com/api/clients/{client_id}/proxies',
        headers={
            'Authorization': user_token,
            'Content-Type': 'application/json'
        },
        json={
            'proxyName': 'Stripe Proxy',
            'proxyRegion': 'us-east-1',
            'proxyProxyCredentialId': proxy_cred['credentials'][0]['sKey'],
            'proxyTargetId': target['targets'][0]['sKey'],
            'proxyTargetCredentialId': target_cred['credentials'][0]['sKey'],
            'proxyActive': True,
            'proxyDefaultRuleEffect': 'allow'
        }
    ).json()

    proxy_id = proxy['proxies'][0]['sKey']
    region = proxy['proxies'][0]['proxyRegion']

    return {
        'proxy': proxy['proxies'][0],
        'proxyURL': f'https://{region}.requestrocket.com/api/{proxy_id}'
    }


print(json.dumps(setup_complete_proxy("your-client-id", os.getenv('USER_TOKEN'))))
"""

SEED_CREATE_FIELDS = {
    "proxyName": "Production Payment Gateway",
    "proxyRegion": "us-east-1",
    "proxyActive": True,
    "proxyDefaultRuleEffect": "allow",
    "proxyAlias": "payment-gateway",
}


def run_sample(server, owner, source: str, ids: dict, extra_env: dict | None = None):
    """Run `source` with the live admin as host and `ids` replacing the placeholders."""
    code = source.replace(SEED_HOST, server.base_url)
    for placeholder, real in ids.items():
        code = code.replace(placeholder, real)
    assert SEED_HOST not in code
    assert not [p for p in PLACEHOLDERS if p in code], code
    env = {**os.environ, "USER_TOKEN": owner.token, **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def stdout_of(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


# Seed 001 keeps its samples without indentation or a final newline; they run as they are.
GET_REQUEST = """\
import requests
import os
client_id = "your-client-id"
proxy_id = "your-proxy-id"
request_id = "your-request-id"
response = requests.get(
f'https://api.requestrocket.com/api/clients/{client_id}/proxies/{proxy_id}/requests/{request_id}',
headers={'Authorization': os.getenv('USER_TOKEN')}
)
data = response.json()
req = data['requests'][0]
print(f"Request: {req['method']} {req['path']}")
print(f"Status: {req['statusCode']}, Duration: {req['duration']}ms")"""
LIST_REQUESTS = """\
import requests
from datetime import datetime, timedelta
import os
# Get requests from last week
one_week_ago = (datetime.now() - timedelta(days=7)).isoformat()
response = requests.get(
f'https://api.requestrocket.com/api/clients/{client_id}/proxies/{proxy_id}/requests',
params={
'limit': 100,
'processedAfter': one_week_ago
},
headers={'Authorization': os.getenv('USER_TOKEN')}
)
data = response.json()
print(f"Found {data['totalRequests']} requests")"""
# The list sample uses `client_id` and `proxy_id` without defining them; the page leaves
# them to the reader, as the detail sample defines them.
LIST_REQUESTS_PRELUDE = 'client_id = "your-client-id"\nproxy_id = "your-proxy-id"\n'


@pytest.fixture
def seed_proxy(api, client_id) -> dict:
    """A proxy as the Create Proxy sample makes it."""
    return new_proxy(api, client_id, **SEED_CREATE_FIELDS)


@pytest.mark.parametrize(
    "sample", [LIST_PROXIES, CREATE_PROXY, GET_PROXY, UPDATE_PROXY, DELETE_PROXY]
)
def test_samples_are_verbatim_from_the_seed(sample):
    if not SEED_FILES:
        pytest.skip("seed 000 is not available on this machine")
    assert sample in SEED_FILES[0].read_text()


@pytest.mark.parametrize("count", [0, 1, 2])
def test_list_proxies_sample(admin_server, owner, api, client_id, count):
    for _ in range(count):
        new_proxy(api, client_id)
    result = run_sample(admin_server, owner, LIST_PROXIES, {"your-client-id": client_id})
    assert stdout_of(result) == f"Found {count} proxies\n"


def test_create_proxy_sample(admin_server, owner, api, client_id):
    limits = {"requestsPerMinute": 60, "requestsPerDay": 6000}
    response = api.put(
        f"/api/clients/{client_id}/configuration", json={"configuration": {"limits": limits}}
    )
    assert response.status_code == 200, response.text
    parts = proxy_parts(api, client_id)
    ids = {
        "your-client-id": client_id,
        "cred_123": parts["proxyProxyCredentialId"],
        "tgt_456": parts["proxyTargetId"],
        "cred_789": parts["proxyTargetCredentialId"],
    }
    result = run_sample(admin_server, owner, CREATE_PROXY, ids)
    assert stdout_of(result) == "Created proxy: Production Payment Gateway\n"

    [proxy] = api.get(f"/api/clients/{client_id}/proxies").json()["proxies"]
    expected = {
        **SEED_CREATE_FIELDS,
        **parts,
        "clientId": client_id,
        "userId": owner.id,
        "proxyAdditionalHeaders": {},
        "proxyAdditionalQueryParams": {},
        "proxyAdditionalData": {},
        "proxyMaxRequestsPerMinute": 60,
        "proxyMaxRequestsPerDay": 6000,
    }
    assert {key: proxy[key] for key in expected} == expected
    by_alias = api.get(f"/api/clients/{client_id}/proxies/payment-gateway")
    assert by_alias.json()["proxies"] == [proxy]

    # Running it again does not make a second proxy: the alias is taken (409), and the
    # sample, which does not check the status, fails reading `proxies` from the error.
    again = run_sample(admin_server, owner, CREATE_PROXY, ids)
    assert again.returncode != 0 and "KeyError: 'proxies'" in again.stderr
    assert api.get(f"/api/clients/{client_id}/proxies").json()["proxies"] == [proxy]


@pytest.mark.parametrize("by", ["sKey", "proxyAlias"])
def test_get_proxy_sample(admin_server, owner, api, client_id, seed_proxy, by):
    ids = {"your-client-id": client_id, "your-proxy-id": seed_proxy[by]}
    result = run_sample(admin_server, owner, GET_PROXY, ids)
    assert stdout_of(result) == "Proxy: Production Payment Gateway\n"


def test_update_proxy_sample(admin_server, owner, api, client_id, seed_proxy):
    ids = {"your-client-id": client_id, "your-proxy-id": seed_proxy["sKey"]}
    result = run_sample(admin_server, owner, UPDATE_PROXY, ids)
    assert stdout_of(result) == "Updated: Success\n"

    [proxy] = api.get(f"/api/clients/{client_id}/proxies").json()["proxies"]
    assert proxy == {
        **seed_proxy,
        "proxyName": "Updated Proxy Name",
        "proxyActive": False,
        "proxyUpdatedAt": proxy["proxyUpdatedAt"],
    }


def test_delete_proxy_sample(admin_server, owner, api, client_id, seed_proxy):
    ids = {"your-client-id": client_id, "your-proxy-id": seed_proxy["sKey"]}
    result = run_sample(admin_server, owner, DELETE_PROXY, ids)
    assert stdout_of(result) == "Proxy deleted successfully\n"

    base = f"/api/clients/{client_id}"
    assert api.get(f"{base}/proxies").json()["proxies"] == []
    assert api.get(f"{base}/proxies/{seed_proxy['sKey']}").status_code == 404
    # What the proxy used is still there.
    assert api.get(f"{base}/targets/{seed_proxy['proxyTargetId']}").status_code == 200
    for field in ("proxyProxyCredentialId", "proxyTargetCredentialId"):
        assert api.get(f"{base}/credentials/{seed_proxy[field]}").status_code == 200

    # The same sample run again: the proxy is gone, so the admin answers 404's message.
    again = stdout_of(run_sample(admin_server, owner, DELETE_PROXY, ids))
    assert again == "Proxy not found\n"


def test_complete_setup_example(admin_server, owner, api, client_id):
    stripe_key = "sk_test_portcullis_0123456789"
    result = run_sample(
        admin_server,
        owner,
        COMPLETE_SETUP,
        {"your-client-id": client_id},
        extra_env={"STRIPE_KEY": stripe_key},
    )
    setup = json.loads(stdout_of(result))
    proxy = setup["proxy"]
    assert setup["proxyURL"] == f"https://{REGION}.requestrocket.com/api/{proxy['sKey']}"

    base = f"/api/clients/{client_id}"
    assert api.get(f"{base}/proxies").json()["proxies"] == [proxy]
    assert proxy == api.get(f"{base}/proxies/{proxy['sKey']}").json()["proxies"][0]
    assert {k: proxy[k] for k in ("proxyName", "proxyRegion", "proxyActive")} == {
        "proxyName": "Stripe Proxy",
        "proxyRegion": "us-east-1",
        "proxyActive": True,
    }
    assert proxy["proxyDefaultRuleEffect"] == "allow"

    [target] = api.get(f"{base}/targets").json()["targets"]
    assert target["sKey"] == proxy["proxyTargetId"]
    assert {k: target[k] for k in ("targetName", "targetRegion", "targetBaseURL")} == {
        "targetName": "Stripe API",
        "targetRegion": "us-east-1",
        "targetBaseURL": "https://api.stripe.com",
    }
    assert target["targetTestPath"] == "/v1/customers"

    credentials = api.get(f"{base}/credentials")
    by_id = {c["sKey"]: c for c in credentials.json()["credentials"]}
    assert set(by_id) == {proxy["proxyProxyCredentialId"], proxy["proxyTargetCredentialId"]}
    app_key = by_id[proxy["proxyProxyCredentialId"]]
    stripe = by_id[proxy["proxyTargetCredentialId"]]
    shown = ("credentialName", "credentialType", "credentialAuthType", "credentialRegion")
    # `key` is the blog's name for `apiKey`; the API answers with the canonical name.
    assert [app_key[k] for k in shown] == ["App API Key", "proxy", "apiKey", "us-east-1"]
    assert app_key["credentialSettings"] == {"in": "header", "name": "X-API-Key"}
    assert [stripe[k] for k in shown] == ["Stripe Token", "target", "bearer", "us-east-1"]
    # Secrets are sealed: never in an answer.
    assert "credentialSecret" not in app_key and "credentialSecret" not in stripe
    assert stripe_key not in credentials.text and "app-key" not in credentials.text
    assert stripe_key not in result.stdout


def test_complete_setup_proxy_is_usable_with_the_seed_samples(admin_server, owner, api, client_id):
    """The proxy the setup example makes is listed, read and deleted by the page's samples."""
    result = run_sample(
        admin_server,
        owner,
        COMPLETE_SETUP,
        {"your-client-id": client_id},
        extra_env={"STRIPE_KEY": "sk_test_0123456789"},
    )
    proxy = json.loads(stdout_of(result))["proxy"]
    ids = {"your-client-id": client_id, "your-proxy-id": proxy["sKey"]}
    assert stdout_of(run_sample(admin_server, owner, LIST_PROXIES, ids)) == "Found 1 proxies\n"
    assert stdout_of(run_sample(admin_server, owner, GET_PROXY, ids)) == "Proxy: Stripe Proxy\n"
    assert stdout_of(run_sample(admin_server, owner, UPDATE_PROXY, ids)) == "Updated: Success\n"
    deleted = stdout_of(run_sample(admin_server, owner, DELETE_PROXY, ids))
    assert deleted == "Proxy deleted successfully\n"
    base = f"/api/clients/{client_id}"
    assert api.get(f"{base}/proxies").json()["proxies"] == []
    # With the proxy gone, nothing holds its target any more.
    response = api.delete(f"{base}/targets/{proxy['proxyTargetId']}")
    assert response.json() == {"message": "Target deleted successfully"}


@pytest.mark.parametrize("sample", [GET_REQUEST, LIST_REQUESTS])
def test_request_samples_are_verbatim_from_the_seed(sample):
    if not REQUESTS_SEED_FILES:
        pytest.skip("seed 001 is not available on this machine")
    assert sample in REQUESTS_SEED_FILES[0].read_text()


def test_request_detail_sample_prints_seed_001s_flat_fields(
    admin_server, owner, api, setup, gateway
):
    auth = {"X-API-Key": CALLER_KEY}
    response = call(gateway, "POST", f"/api/{setup.id}/status/201", headers=auth, json={"n": 1})
    assert response.status_code == 201
    request_id = response.headers["portcullis-request-id"]
    logged(api, setup, request_id)
    ids = {"your-client-id": setup.client_id, "your-proxy-id": setup.id}
    result = run_sample(admin_server, owner, GET_REQUEST, {**ids, "your-request-id": request_id})
    printed = stdout_of(result)
    assert re.fullmatch(r"Request: POST /status/201\nStatus: 201, Duration: \d+ms\n", printed)

    listed = run_sample(admin_server, owner, LIST_REQUESTS_PRELUDE + LIST_REQUESTS, ids)
    total = api.get(f"{setup.base}/proxies/{setup.id}/requests").json()["totalRequests"]
    assert stdout_of(listed) == f"Found {total} requests\n" and total >= 2
