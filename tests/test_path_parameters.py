"""`;` path parameters: dot segments are refused, rules see both readings, the explainer agrees.

Tomcat, Jetty and Spring cut each path segment at `;` (`/x/..;/admin` is
`/admin` to them); other servers keep `;` literal. Against a real
`run_proxy.py` and the recording upstream, over raw sockets (HTTP libraries
would normalise the paths): every spelling of a dot segment with parameters is
400 `INVALID_PATH` and never reaches the target, on the Proxy and Async APIs;
a deny rule cannot be passed by hiding its path behind parameters; and the
rule explainer gives the same answers.
"""

from __future__ import annotations

import itertools

import pytest

from tests.proxy_support import CALLER_KEY, Setup, served_setup, wait_until_served
from tests.raw_http import exchange, request
from tests.support import Api

DOTS = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2E.", "%252e%252e", ".", "%2e", "%2E", "%252E"]
SEMICOLONS = [";", "%3b", "%3B", "%253b", "%253B"]
SPELLINGS = [f"{d}{s}{t}" for d, s, t in itertools.product(DOTS, SEMICOLONS, ["", "x=1"])]
PLACES = ["x/{}/admin", "{}/admin", "x/y/{}/{}/admin"]


def send(gateway, prefix: str, proxy_id: str, path: str):
    target = f"/{prefix}/{proxy_id}/{path}".encode()
    head = [(b"Host", b"gw"), (b"X-API-Key", CALLER_KEY.encode())]
    return exchange(gateway.base_url, request(b"GET", target, head))


def new_upstream_paths(upstream, since: int) -> list[str]:
    return upstream.started[since:]


@pytest.fixture(scope="module")
def untouched(admin_server, owner, upstream, gateway) -> Setup:
    """A proxy without rules, shared by the tests that only send through it; the tests that
    add rules take a fresh one (`setup`)."""
    return served_setup(Api(admin_server.base_url, owner.token), upstream, gateway)


@pytest.mark.parametrize("prefix", ["api", "async"])
def test_every_dot_segment_spelling_with_parameters_is_400(untouched, gateway, upstream, prefix):
    since = len(upstream.started)
    refused = []
    for spelling, place in itertools.product(SPELLINGS, PLACES):
        answer = send(gateway, prefix, untouched.id, place.format(spelling, spelling))
        if answer.status != 400 or answer.json()["error"]["code"] != "INVALID_PATH":
            refused.append((spelling, place, answer.status))
    assert refused == []
    assert not [p for p in new_upstream_paths(upstream, since) if p.endswith("/admin")]


BYPASSES = [
    "secret;x/data",
    "secret;/data",
    ";x/secret/data",
    "secret%3bx/data",
    "secret%3Bjsessionid=1/data",
    "secret%253bx/data",
    "secret/data;x",
    "secret;a;b/data;c",
    "%73ecret;x/data",
]


def explain(api, setup, path: str):
    return api.post(
        f"{setup.base}/proxies/{setup.id}/explain", json={"method": "GET", "path": path}
    )


@pytest.mark.parametrize("prefix", ["api", "async"])
def test_a_deny_rule_cannot_be_passed_with_path_parameters(api, setup, gateway, upstream, prefix):
    deny = setup.rule(f"proxies/{setup.id}", {"effect": "deny", "pathPattern": "^/secret/data"})
    headers = {"X-API-Key": CALLER_KEY}
    wait_until_served(
        gateway, f"/api/{setup.id}/secret/data", headers, lambda r: r.status_code == 403
    )
    since = len(upstream.started)
    for path in BYPASSES:
        answer = send(gateway, prefix, setup.id, path)
        assert answer.status == 403, (path, answer.raw[:300])
        assert answer.json()["error"]["details"] == {"scope": "proxy", "ruleId": deny["ruleId"]}
        explained = explain(api, setup, "/" + path)
        assert explained.status_code == 200, explained.text
        verdict = explained.json()["explanations"][0]
        assert (verdict["allowed"], verdict["scope"], verdict["ruleId"]) == (
            False,
            "proxy",
            deny["ruleId"],
        ), path
        assert len(verdict["readings"]) == (2 if ";" in verdict["path"] else 1)
    for path in ("x;a/../secret/data", "x/..;/secret/data", "x/%2e%2e%3b/secret/data"):
        assert send(gateway, prefix, setup.id, path).status == 400
        assert explain(api, setup, "/" + path).status_code == 400
    assert not [p for p in new_upstream_paths(upstream, since) if "secret" in p]
    # The same paths without the denied prefix still go through, parameters and all.
    allowed = send(gateway, "api", setup.id, "public;v=1/data")
    assert allowed.status == 200
    assert upstream.wait_started("/base/public;v=1/data")


def test_an_allow_list_must_allow_both_readings(api, setup, gateway, upstream):
    setup.rule(f"targets/{setup.target['sKey']}", {"effect": "allow", "pathPattern": "^/public/"})
    api.put(
        f"{setup.base}/targets/{setup.target['sKey']}", json={"targetDefaultRuleEffect": "deny"}
    )
    headers = {"X-API-Key": CALLER_KEY}
    wait_until_served(gateway, f"/api/{setup.id}/other", headers, lambda r: r.status_code == 403)
    assert send(gateway, "api", setup.id, "public/x").status == 200
    # `/public;a/x` is `/public/x` to Tomcat, but literally it is not under `/public/`.
    for path, status in (("public;a/x", 403), ("x;public/../y", 400), ("public/..;/admin", 400)):
        assert send(gateway, "api", setup.id, path).status == status, path
    explained = explain(api, setup, "/public;a/x").json()["explanations"][0]
    assert not explained["allowed"] and explained["readings"] == ["/public;a/x", "/public/x"]
