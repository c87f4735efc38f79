"""Nothing the data plane prints holds a secret, at any `flow_detail`.

mitmdump prints every flow (`flow_detail` 1: the request line and the status;
2: the headers; 3 and 4: the bodies) and the gateway's own log lines go to
the same output, which ends up in log collectors. One `run_proxy.py` per
level serves requests through every target credential injection type and
every place a caller's credential can be, granted, queued (`/async/`),
refused (401 with a wrong credential, 403 by a rule); then no secret may be
found in the output, in any spelling: as sent, percent-encoded, or inside
base64 (Basic auth).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import quote
from uuid import uuid4

import jwt
import pytest
import requests

from tests.internal_server import BrokenServer
from tests.proxy_support import Setup, start_proxy, wait_until_served
from tests.support import AdminServer, Api, create_user, start_admin

SECRETS: list[str] = []  # the distinctive part of every secret: letters and digits only
SENT_FORMS: list[str] = []  # whole encoded values that must not appear either (Basic pairs)
DELIVERY_TIMEOUT_S = 30
# Characters that percent-encoding and `+`-encoding change, so every spelling is exercised.
AWKWARD = "+/ =&é"


def secret(tag: str) -> str:
    """A fresh secret: a letters-and-digits core (searched for) and awkward characters."""
    core = f"S{tag}{uuid4().hex[:20]}"
    SECRETS.append(core)
    return core


def basic(user: str, password: str) -> str:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    SENT_FORMS.append(pair)
    return f"Basic {pair}"


def base64_spellings(core: str) -> list[str]:
    """What `core` looks like inside any base64 text, at each of the three alignments."""
    spellings = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + core.encode()).decode()
        spellings.append(encoded[4:-4])  # the part that does not depend on the neighbours
    return spellings


def forbidden_strings() -> list[str]:
    found = [*SECRETS, *SENT_FORMS]
    for core in SECRETS:
        found += base64_spellings(core)
    return found


@dataclass
class Call:
    """One request to send in every run, and what it must get back."""

    method: str
    path: str
    headers: dict = field(default_factory=dict)
    expect: int = 200
    body: bytes | None = None


@dataclass
class Plan:
    broken: BrokenServer
    calls: list[Call] = field(default_factory=list)
    async_paths: list[str] = field(default_factory=list)  # what the target must receive
    probes: list[tuple[str, dict, int]] = field(default_factory=list)  # poll until served


def add_proxy_calls(plan: Plan, made: Setup, good: dict, bad: dict, query: str = "") -> None:
    """Granted (GET, buffered POST, streamed POST), queued, refused by credential and by rule."""
    sep = "&" if query else ""
    api = f"/api/{made.id}"
    tag = uuid4().hex[:8]
    plan.probes.append((f"{api}/status/200?{query}", good, 200))
    plan.calls += [
        Call("GET", f"{api}/status/200?{query}{sep}page=2", good),
        Call("POST", f"{api}/status/201?{query}", good, 201, b'{"n": 1}'),
        Call("POST", f"{api}/status/200?{query}", good, 200, b"x" * (1024 * 1024 + 1)),
        Call("POST", f"/async/{made.id}/delivered/{tag}-RUN?{query}", good, 202, b'{"n": 2}'),
        Call("GET", f"{api}/status/200?{query}", bad, 401),
        Call("GET", f"{api}/denied/x?{query}", good, 403),
    ]
    plan.async_paths.append(f"/base/delivered/{tag}-RUN")  # RUN: the flow_detail of the run
    made.rule(f"proxies/{made.id}", {"effect": "deny", "pathPattern": "^/denied"})


def caller_locations(plan: Plan, api: Api, upstream) -> None:
    """Every place a caller's credential may be, toward a bearer target credential."""
    target = {"credentialAuthType": "bearer", "credentialSecret": {"token": secret("tgtbearer")}}
    in_authorization, in_header = secret("callauth"), secret("callhdr")
    in_query_auth, in_named_query = secret("callqauth"), secret("callq") + AWKWARD
    user, password = secret("calluser"), secret("callpw")
    bearer, jwt_token = secret("callbearer"), f"eyJhbGciOiJub25lIn0.{secret('calljwt')}.c2ln"
    hs_secret = secret("callhs") + "x" * 20
    claims = {"exp": datetime.now(UTC) + timedelta(hours=2), "sub": secret("callsub")}
    verified = jwt.encode(claims, hs_secret, algorithm="HS256")
    SECRETS.append(verified.split(".")[2])  # the signature: the token's unforgeable part
    wrong = secret("wrong")
    cases = [
        ({"credentialAuthType": "apiKey", "credentialSecret": {"value": in_authorization}},
         {"Authorization": in_authorization}, {"Authorization": wrong}, ""),
        ({"credentialAuthType": "apiKey",
          "credentialSecret": {"value": in_header, "header": "X-Caller-Key"}},
         {"X-Caller-Key": in_header}, {"X-Caller-Key": wrong}, ""),
        ({"credentialAuthType": "apiKey", "credentialSecret": {"value": in_query_auth}},
         {}, {}, f"Authorization={in_query_auth}"),
        ({"credentialAuthType": "apiKey",
          "credentialSecret": {"value": in_named_query, "query": "key"}},
         {}, {}, f"key={quote(in_named_query, safe='')}"),
        ({"credentialAuthType": "basicAuth",
          "credentialSecret": {"username": user, "password": password}},
         {"Authorization": basic(user, password)}, {"Authorization": basic(user, wrong)}, ""),
        ({"credentialAuthType": "bearer", "credentialSecret": {"token": bearer}},
         {"Authorization": f"Bearer {bearer}"}, {"Authorization": f"Bearer {wrong}"}, ""),
        ({"credentialAuthType": "jwt", "credentialSecret": {"token": jwt_token}},
         {"Authorization": f"Bearer {jwt_token}"}, {"Authorization": f"Bearer {wrong}"}, ""),
        ({"credentialAuthType": "jwtVerify",
          "credentialSecret": {"secret": hs_secret, "algorithms": ["HS256"]}},
         {"Authorization": f"Bearer {verified}"}, {"Authorization": f"Bearer {wrong}.x.y"}, ""),
    ]  # fmt: skip
    for caller, good, bad, query in cases:
        made = Setup(api, upstream, caller=caller, target=target)
        add_proxy_calls(plan, made, good, bad, query)
    # The query-borne credentials: the wrong one goes in the same place.
    for call in plan.calls:
        if call.expect == 401 and not call.headers:
            call.path = call.path.replace(in_query_auth, wrong).replace(
                quote(in_named_query, safe=""), wrong
            )


def injection_types(plan: Plan, api: Api, upstream) -> None:
    """Every way a target credential is injected, plus secret-looking proxy additions."""
    caller_key = secret("caller")
    good, bad = {"X-API-Key": caller_key}, {"X-API-Key": secret("wrongcaller")}
    caller = {
        "credentialAuthType": "apiKey",
        "credentialSecret": {"key": "X-API-Key", "value": caller_key},
    }
    user, password = secret("tgtuser"), secret("tgtpw")
    basic(user, password)  # its base64 form is looked for too
    targets = [
        {"credentialAuthType": "apiKey",
         "credentialSecret": {"value": secret("tgthdr"), "header": "X-Target-Key"}},
        {"credentialAuthType": "apiKey",
         "credentialSecret": {"value": secret("tgtquery") + AWKWARD, "query": "api_key"}},
        {"credentialAuthType": "bearer", "credentialSecret": {"token": secret("tgtbearer")}},
        {"credentialAuthType": "jwt",
         "credentialSecret": {"token": f"eyJhbGciOiJIUzI1NiJ9.{secret('tgtjwt')}.c2ln"}},
        {"credentialAuthType": "basicAuth",
         "credentialSecret": {"username": user, "password": password}},
        {"credentialAuthType": "custom",
         "credentialSecret": {"headers": {"X-Custom-Sig": secret("tgtcustomh")},
                              "queryParams": {"sig": secret("tgtcustomq") + AWKWARD}}},
    ]  # fmt: skip
    for target in targets:
        made = Setup(api, upstream, caller=caller, target=target)
        add_proxy_calls(plan, made, good, bad)
    # Additional headers and query parameters are configuration, shown by the Core API; those
    # whose names look like credentials are redacted as in the request log.
    made = Setup(
        api,
        upstream,
        caller=caller,
        proxyAdditionalHeaders={"X-Upstream-Token": secret("addhdr"), "X-Team": "payments"},
        proxyAdditionalQueryParams={"api_secret": secret("addquery"), "version": "2"},
    )
    add_proxy_calls(plan, made, good, bad)
    # Refused before any credential is read: unknown proxy, path escaping the base path.
    for path, status in (("/api/no-such-proxy/x", 404), (f"/api/{made.id}/a/%2e%2e/%2e%2e/b", 400)):
        plan.calls.append(
            Call(
                "GET",
                f"{path}?Authorization={secret('refq')}&api_key={secret('refk')}",
                {"Authorization": f"Bearer {secret('refh')}", "X-API-Key": secret("refx")},
                status,
            )
        )
    # A target whose answer is not HTTP: the 502 says what broke, not the URL it was sent to.
    made = Setup(
        api, SimpleNamespace(base_url=plan.broken.base_url), caller=caller, target=targets[1]
    )
    plan.probes.append((f"/api/{made.id}/x", good, 502))
    plan.calls.append(Call("GET", f"/api/{made.id}/x?page=1", good, 502))


@pytest.fixture(scope="module")
def output_admin(tmp_path_factory) -> AdminServer:
    """A store of its own: every proxy process on a store delivers its async jobs."""
    server = start_admin(tmp_path_factory.mktemp("output-admin"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plan(output_admin, upstream):
    api = Api(output_admin.base_url, create_user(output_admin, "output@example.test").token)
    with BrokenServer() as broken:
        made = Plan(broken)
        caller_locations(made, api, upstream)
        injection_types(made, api, upstream)
        yield made


def wait_delivered(upstream, paths: list[str]) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        seen = {received.path for received in upstream.received}
        missing = [path for path in paths if path not in seen]
        if not missing:
            return
        assert time.monotonic() < deadline, f"async jobs not delivered: {missing}"
        time.sleep(0.05)  # polling the recording upstream, bounded by the deadline


def assert_nothing_secret(text: str, where: str) -> None:
    leaked = sorted({secret for secret in forbidden_strings() if secret in text})
    assert not leaked, f"secrets in {where}: {leaked}"


@pytest.mark.parametrize("detail", [1, 2, 3, 4])
def test_no_secret_in_the_data_planes_output(output_admin, upstream, plan, tmp_path, detail):
    """mitmdump's output at each level; the flows as mitmweb shows them (`-w`); every answer."""
    flows = tmp_path / "flows.mitm"
    gateway = start_proxy(
        output_admin, tmp_path, "--set", f"flow_detail={detail}", "-w", str(flows)
    )
    answers = []
    try:
        for path, headers, status in plan.probes:
            ready = wait_until_served(
                gateway, path, headers, lambda r, s=status: r.status_code == s
            )
            assert ready.status_code == status, ready.text
        for call in plan.calls:
            response = requests.request(
                call.method,
                gateway.base_url + call.path.replace("RUN", str(detail)),
                headers=call.headers,
                data=call.body,
                timeout=15,
            )
            assert response.status_code == call.expect, (call.path, response.text)
            answers.append(f"{response.headers} {response.text}")
        wait_delivered(upstream, [path.replace("RUN", str(detail)) for path in plan.async_paths])
    finally:
        gateway.stop()
    output = gateway.log_text()
    assert "[REDACTED]" in output or detail == 1, "the headers are printed, blanked"
    assert_nothing_secret(output, f"the flow_detail={detail} output")
    assert_nothing_secret(flows.read_bytes().decode("utf-8", "replace"), "the saved flows")
    assert_nothing_secret("\n".join(answers), "the answers")
