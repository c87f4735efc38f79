"""Schemathesis fuzzes every documented operation with valid and invalid input; then every
write endpoint gets hostile bodies (deep nesting, bytes that are not UTF-8, NUL, huge
numbers, wrong types, control characters in every string field).

Whatever it sends, the admin must answer with a status below 500 and a JSON
body. Path parameters point at real records (so bodies reach validation,
not just a 404). DELETEs are left out: they would empty the fixture data,
and each one is tested directly elsewhere.
"""

from __future__ import annotations

import copy
import re
from http.cookiejar import DefaultCookiePolicy

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.support import (
    Api,
    create,
    create_user,
    credential_body,
    new_client,
    proxy_body,
    proxy_parts,
)
from tests.team_support import token_of

DESTROY_A = {"action": "destroy", "paths": ["a"]}


EMAIL_NOTIFIER = {
    "name": "Fuzz",
    "type": "email",
    "subscribesTo": ["*"],
    "enabled": True,
    "recipients": ["ops@example.test"],
}


@pytest.fixture(scope="module")
def real_ids(admin_server) -> dict:
    # A platform admin, so system notifications are fuzzed past the permission check too.
    user = create_user(admin_server, "fuzz-platform-admin@example.test", platform_admin=True)
    api = Api(admin_server.base_url, user.token)
    client_id = new_client(api, "Fuzzing")
    parts = proxy_parts(api, client_id)
    base = f"/api/clients/{client_id}"
    proxy = create(api, f"{base}/proxies", proxy_body(parts), "proxies")
    rule = create(api, f"{base}/proxies/{proxy['sKey']}/rules", {"effect": "allow"}, "rules")
    spare = create(api, f"{base}/credentials", credential_body(), "credentials")
    token_id = api.get("/api/users/me/tokens").json()["tokens"][0]["tokenId"]
    proxy_base = f"{base}/proxies/{proxy['sKey']}"
    meter = create(
        api, f"{proxy_base}/meters", {"meterName": "Calls", "meterType": "request_count"}, "meters"
    )
    payload_filter = create(
        api, f"{proxy_base}/filters", {"action": "destroy", "paths": ["a"]}, "filters"
    )
    invitee = {"email": "fuzz.invitee@example.test", "roles": ["user"]}
    invite = create(api, f"{base}/invites", invitee, "invites")
    notifier = create(api, f"{base}/notifiers", EMAIL_NOTIFIER, "notifiers")
    return {
        "token": user.token,
        "path": {
            "inviteId": invite["inviteId"],
            "token": token_of(invite["inviteUrl"]),
            "notifierId": notifier["notifierId"],
            "clientId": client_id,
            "credentialId": spare["sKey"],
            "targetId": parts["proxyTargetId"],
            "proxyId": proxy["sKey"],
            "parentId": proxy["sKey"],
            "ruleId": rule["sKey"],
            "userId": user.id,
            "tokenId": token_id,
            "meterId": meter["meterId"],
            "filterId": payload_filter["filterId"],
        },
    }


@pytest.fixture(scope="module")
def document(admin_server) -> dict:
    """The admin's OpenAPI document, read once for every test here."""
    return requests.get(f"{admin_server.base_url}/api/openapi.json", timeout=30).json()


@pytest.fixture(scope="module")
def fuzz_session():
    """One keep-alive session for every generated case (a TCP connection per case cost the
    test and the admin more CPU than many cases themselves); it stores no cookies, so each
    case still stands alone."""
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    yield session
    session.close()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_input_causes_a_server_error(admin_server, real_ids, document, fuzz_session, mode):
    schema = schemathesis.openapi.from_dict(copy.deepcopy(document))  # it may resolve in place
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
            _check_operation(strategy, admin_server.base_url, real_ids["token"], fuzz_session)
        except Unsatisfiable:
            # Nothing to make invalid (no parameters, no body): covered by the positive run.
            assert mode == "negative", operation.label


def _check_operation(strategy, base_url: str, token: str, session: requests.Session) -> None:
    @given(case=strategy)
    @settings(
        max_examples=20,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(base_url=base_url, session=session, headers={"Authorization": token})
        if unsupported_transfer_coding(case, response):
            return
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        content_type = str(response.headers.get("content-type", ""))
        assert "application/json" in content_type, (case.as_curl_command(), response.headers)

    run()


# Hostile bodies on every write endpoint: deep nesting, bytes that are not UTF-8, NUL
# bytes, numbers beyond a float, wrong types, control characters in every string field.
# Endpoints come from the OpenAPI document, so a new one is covered without a change here.

DEEP = 10_000
CONTROL = "a\u0000b\u0007\u001b[31m\u007f\u0085\u2028\u202e\u2066z"
VOLATILE = frozenset({"lastUsedAt", "lastSeenAt", "expiresAt"})


def _nested(depth: int, inner: str = "1", kind: str = "array") -> str:
    opening, closing = ("[", "]") if kind == "array" else ('{"k":', "}")
    return opening * depth + inner + closing * depth


def malformed_bodies(first_field: str) -> dict[str, tuple[bytes, str | None]]:
    """name → (raw body, the error code it must get, or None for any 4xx envelope)."""
    key = first_field.encode()
    return {
        "deep arrays": (_nested(DEEP, "").encode(), "INVALID_JSON"),
        "deep objects": (_nested(DEEP, kind="object").encode(), "INVALID_JSON"),
        "deep in a field": (b'{"' + key + b'": ' + _nested(DEEP).encode() + b"}", "INVALID_JSON"),
        "65 arrays": (_nested(65, "").encode(), "INVALID_JSON"),
        "65 objects": (_nested(65, kind="object").encode(), "INVALID_JSON"),
        "65 in a field": (b'{"' + key + b'": ' + _nested(64).encode() + b"}", "INVALID_JSON"),
        "unclosed": (b"[" * DEEP, "INVALID_JSON"),
        "utf-16 bom garbage": (b"\xff\xfe\xff\xfe", "INVALID_JSON"),
        "invalid utf-8": (b'{"' + key + b'": "\xff\xfe"}', "INVALID_JSON"),
        "raw lone surrogate": (b'{"' + key + b'": "\xed\xa0\x80"}', "INVALID_JSON"),
        "escaped lone surrogate": (b'{"' + key + b'": "\\ud800"}', "INVALID_JSON"),
        "latin-1": (b'{"' + key + b'": "caf\xe9"}', "INVALID_JSON"),
        "nul byte": (b"\x00", "INVALID_JSON"),
        "raw nul in a string": (b'{"' + key + b'": "a\x00b"}', "INVALID_JSON"),
        "nul after the object": (b'{"' + key + b'": "a"}\x00', "INVALID_JSON"),
        "1e400": (b'{"' + key + b'": 1e400}', "INVALID_JSON"),
        "NaN": (b'{"' + key + b'": NaN}', "INVALID_JSON"),
        "-Infinity": (b'{"' + key + b'": -Infinity}', "INVALID_JSON"),
        "10**400": (b'{"' + key + b'": 1' + b"0" * 400 + b"}", None),
        "5000 digits": (b'{"' + key + b'": ' + b"7" * 5000 + b"}", "INVALID_JSON"),
        "array": (b"[]", "INVALID_JSON"),
        "string": (b'"text"', "INVALID_JSON"),
        "number": (b"123", "INVALID_JSON"),
        "null": (b"null", "INVALID_JSON"),
        "empty": (b"", "INVALID_JSON"),
        "wrong type in a field": (b'{"' + key + b'": {"x": [1, {"y": true}]}}', None),
    }


def write_operations(document: dict) -> list[tuple[str, str, dict]]:
    """(method, path, request body schema) of every operation that takes a JSON body."""
    schemas = document["components"]["schemas"]
    found = []
    for path, operations in document["paths"].items():
        if path.startswith("/pool"):  # seed 003's shape and pp_ keys: tests/test_pool_sources.py
            continue
        for method, operation in operations.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            body = operation.get("requestBody")
            if body is None:
                continue
            schema = body["content"]["application/json"]["schema"]
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema
            found.append((method.upper(), path, schema))
    return found


def _fill(path: str, ids: dict) -> str:
    """`path` with real ids; `{parentId}`, `{ruleId}` and `{filterId}` by the kind of parent."""
    kind = re.search(r"/(credentials|targets|proxies)/\{parentId\}", path)
    if kind:
        ids = {**ids, **ids["by_parent"][kind.group(1)]}
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def _without_volatile(value):
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def state_path(document: dict, path: str) -> str | None:
    """A GET that shows what a write to `path` would change: the path itself or its parent."""
    for candidate in (path, path.rsplit("/", 1)[0]):
        if "get" in document["paths"].get(candidate, {}):
            return candidate
    return None


def valid_bodies(real: dict) -> dict[str, dict]:
    """An accepted body per request schema, for probes that change one field of it."""
    return {
        "Client": {"clientName": "Fuzz"},
        "ConfigurationBody": {
            "configuration": {"limits": {"requestsPerMinute": 10, "requestsPerDay": 100}}
        },
        "Credential": credential_body("target", "basicAuth"),
        "Target": {
            "targetName": "t",
            "targetBaseURL": "http://127.0.0.1:9/b",
            "targetRegion": "us-east-1",
            "targetTestPath": "/t",
        },
        "Proxy": {
            **proxy_body(real["parts"]),
            "proxyAlias": "fuzz-alias",
            "proxyAdditionalHeaders": {"X-A": "b"},
            "proxyAdditionalQueryParams": {"q": "v"},
            "proxyAdditionalData": {"d": "v"},
        },
        "Rule": {
            "effect": "allow",
            "methods": ["GET"],
            "pathPattern": "^/x",
            "headerChecks": [{"namePattern": "x-a", "valuePattern": "b"}],
            "queryChecks": [{"namePattern": "q", "valuePattern": "v"}],
            "notes": "n",
        },
        "NewMember": {"email": real["stranger_email"], "roles": ["user"]},
        "Member": {"roles": ["owner"]},  # the fuzzing user itself: never demoted
        "ExplainRequest": {"method": "GET", "path": "/x", "headers": {"a": "b"}, "query": "q=1"},
        "Password": {},
        "Token": {"label": "fuzz"},
        "Invite": {"email": "fuzz.other@example.test", "roles": ["user"]},
        "InviteSignup": {"name": "Fuzz", "password": "a fuzzing password"},
        "NewSystemNotification": {"title": "t", "message": "m"},
        "Notifier": EMAIL_NOTIFIER,
    }


def string_probes(base: dict, schema: dict) -> list[tuple[str, dict]]:
    """(field path, body) for every string in `base` and every top-level string property
    of `schema`, each replaced in turn by control characters; string map keys too."""
    probes = []

    def walk(value, path: tuple, rebuild):
        if isinstance(value, str):
            probes.append((".".join(map(str, path)), rebuild(CONTROL)))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, key), _setter(value, key, rebuild))
                renamed = _renamer(value, key, rebuild)
                probes.append((".".join(map(str, (*path, "<key>"))), renamed))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*path, index), _setter(value, index, rebuild))

    properties = schema.get("properties", {})
    extra = {
        name: "x"
        for name, prop in properties.items()
        if prop.get("type") == "string" and not prop.get("readOnly") and name not in base
    }
    full = {**base, **extra}
    for key, item in full.items():
        walk(item, (key,), _setter(full, key, lambda v: v))
    return probes


def _setter(container, key, rebuild):
    def set_value(new):
        copy = list(container) if isinstance(container, list) else dict(container)
        copy[key] = new
        return rebuild(copy)

    return set_value


def _renamer(container: dict, key, rebuild):
    return rebuild({(CONTROL if k == key else k): v for k, v in container.items()})


@pytest.fixture(scope="module")
def hostile(admin_server, real_ids, document, make_user) -> dict:
    api = Api(admin_server.base_url, real_ids["token"])
    ids = real_ids["path"]
    base = f"/api/clients/{ids['clientId']}"
    by_parent = {
        "proxies": {
            "parentId": ids["proxyId"],
            "ruleId": ids["ruleId"],
            "filterId": ids["filterId"],
        }
    }
    for kind, parent in (("credentials", ids["credentialId"]), ("targets", ids["targetId"])):
        rule = create(api, f"{base}/{kind}/{parent}/rules", {"effect": "allow"}, "rules")
        found = create(api, f"{base}/{kind}/{parent}/filters", DESTROY_A, "filters")
        by_parent[kind] = {
            "parentId": parent,
            "ruleId": rule["sKey"],
            "filterId": found["filterId"],
        }
    real_ids["path"]["by_parent"] = by_parent
    return {
        "api": api,
        "document": document,
        "parts": proxy_parts(api, ids["clientId"]),
        "stranger_email": make_user().email,
    }


def _send(api: Api, method: str, path: str, raw: bytes) -> requests.Response:
    return api.request(method, path, data=raw, headers={"Content-Type": "application/json"})


def _snapshot(api: Api, path: str | None):
    if path is None:
        return None
    response = api.get(path)
    return response.status_code, _without_volatile(response.json())


def test_hostile_bodies_on_every_write_endpoint_are_4xx_envelopes(real_ids, hostile):
    api, document = hostile["api"], hostile["document"]
    operations = write_operations(document)
    assert len(operations) >= 17, [op[:2] for op in operations]
    failures = []
    for method, template, schema in operations:
        path = _fill(template, real_ids["path"])
        watched = state_path(document, template)
        before = _snapshot(api, watched and _fill(watched, real_ids["path"]))
        writable = [n for n, p in schema.get("properties", {}).items() if not p.get("readOnly")]
        first = writable[0] if writable else "x"
        for name, (raw, code) in malformed_bodies(first).items():
            response = _send(api, method, path, raw)
            label = f"{method} {template} [{name}]"
            if not 400 <= response.status_code < 500:
                failures.append((label, response.status_code, response.text[:200]))
                continue
            body = response.json()
            if body.get("error", {}).get("code") is None or not body.get("message"):
                failures.append((label, "no envelope", response.text[:200]))
            elif code and body["error"]["code"] != code:
                failures.append((label, body["error"]["code"], body["message"][:200]))
            elif ("deep" in name or "65" in name or name == "unclosed") and "64" not in body[
                "message"
            ]:
                failures.append((label, "depth limit not named", body["message"]))
        after = _snapshot(api, watched and _fill(watched, real_ids["path"]))
        if before != after:
            failures.append((f"{method} {template}", "state changed by refused writes", watched))
    assert failures == [], "\n".join(map(str, failures))


def test_control_characters_in_every_string_field_never_cause_a_server_error(real_ids, hostile):
    api, document = hostile["api"], hostile["document"]
    bodies = valid_bodies(hostile)
    schemas = document["components"]["schemas"]
    names = {id(schema): name for name, schema in schemas.items()}
    failures, probed = [], 0
    for method, template, schema in write_operations(document):
        base = bodies.get(names.get(id(schema)), {})
        path = _fill(template, real_ids["path"])
        watched = state_path(document, template)
        watched = watched and _fill(watched, real_ids["path"])
        before = _snapshot(api, watched)
        for field, body in string_probes(base, schema):
            probed += 1
            response = api.request(method, path, json=body)
            label = f"{method} {template} [{field}]"
            # The state right after this probe is the state before the next one: a snapshot
            # is taken again only when this probe did not compare one.
            after = None
            if response.status_code >= 500 or "application/json" not in response.headers.get(
                "Content-Type", ""
            ):
                failures.append((label, response.status_code, response.text[:200]))
            elif response.status_code >= 400:
                if response.json().get("error", {}).get("code") is None:
                    failures.append((label, "no envelope", response.text[:200]))
                else:
                    after = _snapshot(api, watched)
                    if after != before:
                        failures.append((label, "refused, yet the state changed", watched))
            before = after if after is not None else _snapshot(api, watched)
    assert probed > 50
    assert failures == [], "\n".join(map(str, failures))


def unsupported_transfer_coding(case, response) -> bool:
    """The HTTP server (waitress) answers a transfer coding it does not implement with 501
    before the request reaches the API, as RFC 9112 section 6.1 says it should; negative
    fuzzing sends such headers (`Transfer-Encoding: 0`)."""
    headers = {name.lower(): value for name, value in (case.headers or {}).items()}
    coding = headers.get("transfer-encoding")
    return (
        response.status_code == 501
        and coding is not None
        and str(coding).strip().lower() != "chunked"
    )
