"""The benchmark's configuration, made through the Core API as a user would make it.

C: one proxy (apiKey caller credential, bearer target credential, three rules).
D: 100 proxies with 100 caller credentials and 300 rules, on one target.
D+: as D, and every proxy also has a conditional usage meter and a payload filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

REGION = "us-east-1"
# The admin's platform maxima; new clients' proxies copy them. Every proxy is rate limited
# (the defaults, 1000 a minute, are far below what a bench run sends to one proxy), so the
# bench sets limits it never reaches: it measures the limit stage's cost, never its refusals.
BENCH_LIMIT = 1_000_000_000
LIMITS_ENV = {
    "PORTCULLIS_MAX_REQUESTS_PER_MINUTE": str(BENCH_LIMIT),
    "PORTCULLIS_MAX_REQUESTS_PER_DAY": str(BENCH_LIMIT),
}
RULES = (
    {"effect": "allow", "methods": ["GET", "POST"]},
    {"effect": "deny", "pathPattern": "^/admin"},
    {"effect": "allow", "headerChecks": [{"namePattern": "^x-api-key$"}]},
)

# D+: what issue 13's governance adds to each proxy. The meter's predicates hold for every
# bench request, so it counts each one; its limit is never reached.
METER = {
    "meterName": "bench items",
    "meterType": "request_count",
    "meterMode": "conditional",
    "predicates": {"methods": ["GET"], "pathPattern": "^/items"},
    "limits": {"day": BENCH_LIMIT},
}
FILTER = {"action": "destroy", "paths": ["card.number"]}


@dataclass(frozen=True)
class Proxy:
    id: str
    key: str


class CoreApi:
    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = token

    def create(self, path: str, body: dict, envelope: str) -> dict:
        response = self.session.post(self.base_url + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json()[envelope][0]


def _credential(kind: str, auth_type: str, secret: dict) -> dict:
    return {
        "credentialName": f"bench {kind}",
        "credentialType": kind,
        "credentialAuthType": auth_type,
        "credentialRegion": REGION,
        "credentialSecret": secret,
    }


def configure(
    api: CoreApi,
    target_url: str,
    proxies: int,
    *,
    governed: bool = False,
    proxy_fields: dict | None = None,
) -> list[Proxy]:
    """`proxies` proxies to `target_url`, each with its own key and three rules, and when
    `governed` a conditional meter and a payload filter; `proxy_fields` are added to each
    proxy (e.g. `proxyMaxResponseBytes`)."""
    client = api.create("/api/clients", {"clientName": "bench"}, "clients")["clientId"]
    base = f"/api/clients/{client}"
    target_credential = api.create(
        f"{base}/credentials", _credential("target", "bearer", {"token": "bench-target"}),
        "credentials",
    )["sKey"]  # fmt: skip
    target = api.create(
        f"{base}/targets",
        {"targetName": "responder", "targetRegion": REGION, "targetBaseURL": target_url},
        "targets",
    )["sKey"]
    made = []
    for number in range(proxies):
        key = f"bench-key-{number:04d}"
        caller = api.create(
            f"{base}/credentials",
            _credential("proxy", "apiKey", {"key": "X-API-Key", "value": key}),
            "credentials",
        )["sKey"]
        proxy = api.create(
            f"{base}/proxies",
            {
                "proxyName": f"bench {number}",
                "proxyRegion": REGION,
                "proxyProxyCredentialId": caller,
                "proxyTargetId": target,
                "proxyTargetCredentialId": target_credential,
                "proxyMaxRequestsPerMinute": BENCH_LIMIT,
                "proxyMaxRequestsPerDay": BENCH_LIMIT,
                **(proxy_fields or {}),
            },
            "proxies",
        )["sKey"]
        for rule in RULES:
            api.create(f"{base}/proxies/{proxy}/rules", rule, "rules")
        if governed:
            api.create(f"{base}/proxies/{proxy}/meters", METER, "meters")
            api.create(f"{base}/proxies/{proxy}/filters", FILTER, "filters")
        made.append(Proxy(proxy, key))
    return made
