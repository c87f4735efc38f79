"""Seed 003's accounts domain under `/pool`, walked as a person would: register, use the key,
be refused without credits, get credits from a platform admin, acquire, release and acquire
the same proxy again (the credit is not refunded), manage keys; bad input as 422s naming the
field; the registration limit per address; `run_admin.py pool-credits`.

One admin of this module's own (its pool is only what these tests insert), with a low
registration limit so reaching it is cheap.
"""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from models import User
from models.pool import PoolCreditTransaction
from models.store import make_session_factory
from tests.pool_support import (
    PoolApi,
    assert_pool_error,
    insert_proxies,
    proxy_row,
    stored_key_user,
    with_credentials,
)
from tests.support import AdminServer, run_admin_cli, start_admin

REGISTER_PER_HOUR = 14
UNKNOWN_KEY = "pp_" + "x" * 48
INSUFFICIENT = "You need at least 1 credit to acquire a proxy. Current balance: 0."


class Registrar:
    """`POST /pool/auth/register` on one admin, counting every attempt (each counts against
    the address's hourly limit, whatever its answer)."""

    def __init__(self, server: AdminServer):
        self.base_url = server.base_url
        self.anonymous = PoolApi(server.base_url, None)
        self.attempts = 0
        self._emails = itertools.count(1)

    def post(self, **kwargs):
        self.attempts += 1
        return self.anonymous.request("POST", "/auth/register", **kwargs)

    def register(self, name: str) -> tuple[dict, PoolApi]:
        """A new person: the 201 answer and a client with its key."""
        email = f"{name}-{next(self._emails)}@example.test"
        answer = self.post(json={"email": email, "display_name": name.title()})
        assert answer.status_code == 201, answer.text
        body = answer.json()
        return body, PoolApi(self.base_url, body["api_key"]["key"])


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> AdminServer:
    started = start_admin(
        tmp_path_factory.mktemp("pool-accounts"),
        PORTCULLIS_POOL_REGISTER_PER_HOUR=str(REGISTER_PER_HOUR),
        PORTCULLIS_POOL_JUDGE_URL="http://127.0.0.1:9/no-judge",
    )
    yield started
    started.stop()


@pytest.fixture(scope="module")
def registrar(server) -> Registrar:
    return Registrar(server)


@pytest.fixture(scope="module")
def root(server) -> PoolApi:
    """The platform admin the admin made at start, with a `pp_` key."""
    key, _ = stored_key_user(server.database_url, "admin@localhost")
    return PoolApi(server.base_url, key)


def grant(root: PoolApi, email: str, amount, **extra):
    return root.request(
        "POST", "/account/credits/grant", json={"email": email, "amount": amount, **extra}
    )


def test_register_acquire_release_and_keys(server, registrar, root):
    # Register: seed 003's 201 shape, the key shown once.
    body, alice = registrar.register("alice")
    assert list(body) == ["user", "api_key"]
    assert list(body["user"]) == ["id", "email", "display_name"]
    assert body["user"]["display_name"] == "Alice"
    issued = body["api_key"]
    assert list(issued) == ["id", "key", "prefix", "label"]
    assert issued["key"].startswith("pp_") and len(issued["key"]) == 51
    assert issued["prefix"] == issued["key"][:8] and issued["label"] == "default"
    email = body["user"]["email"]

    # The key works; a wrong key is a 401 in seed shape.
    account = alice.get("/account")
    assert account.status_code == 200, account.text
    assert account.json() == {
        "id": body["user"]["id"],
        "email": email,
        "display_name": "Alice",
        "balance": 0,
        "created_at": account.json()["created_at"],
        "is_platform_admin": False,
    }
    assert_pool_error(PoolApi(server.base_url, UNKNOWN_KEY).get("/account"), 401, "UNAUTHORIZED")
    assert_pool_error(registrar.anonymous.get("/account/credits"), 401, "UNAUTHORIZED")

    # Two active proxies of this test's own country, one better; a dead one never leased.
    best, second, dead = insert_proxies(
        server.database_url,
        [
            proxy_row(status="active", country="LU", score=0.9, anonymity="elite"),
            proxy_row(status="active", country="LU", score=0.5, anonymity="elite"),
            proxy_row(status="dead", country="LU", score=1.0, anonymity="elite"),
        ],
    )

    # No credits: 402 first, even when nothing matches, with the seed's exact message.
    for filters in ({"country": "LU"}, {"country": "ZZ"}):
        refused = alice.request("POST", "/proxies/acquire", json=filters)
        assert_pool_error(refused, 402, "INSUFFICIENT_CREDITS")
        assert refused.json()["error"] == {
            "code": "INSUFFICIENT_CREDITS",
            "message": INSUFFICIENT,
            "details": {},
        }

    # Only a platform admin grants.
    assert_pool_error(grant(alice, email, 5), 403, "FORBIDDEN")
    granted = grant(root, email, 3, description="Welcome credits")
    assert granted.status_code == 201, granted.text
    assert granted.json()["balance"] == 3
    assert granted.json()["transaction"]["tx_type"] == "grant"

    # Acquire: the best-scoring free active match, one credit charged.
    leased = alice.request(
        "POST", "/proxies/acquire", json={"country": "lu", "lease_duration_seconds": 600}
    )
    assert leased.status_code == 200, leased.text
    lease = leased.json()
    assert list(lease) == ["lease_id", "proxy", "expires_at", "credits_remaining"]
    assert lease["credits_remaining"] == 2
    assert lease["proxy"] == {
        "ip": best["host"],
        "port": best["port"],
        "protocol": "http",
        "country": "LU",
        "anonymity": "elite",
        "id": best["id"],
    }
    mine = alice.get("/account/leases").json()
    assert [item["lease_id"] for item in mine["items"]] == [lease["lease_id"]]
    assert mine["items"][0]["status"] == "active"

    # Nothing matching: 404; every match leased: 409; the dead proxy is never handed out.
    assert_pool_error(
        alice.request("POST", "/proxies/acquire", json={"country": "ZZ"}),
        404,
        "NO_MATCHING_PROXY",
    )
    only_best = {"country": "LU", "min_score": 0.8}
    assert_pool_error(
        alice.request("POST", "/proxies/acquire", json=only_best), 409, "ALL_PROXIES_LEASED"
    )

    # Someone else's lease is not found, neither released nor listed.
    _, bob = registrar.register("bob")
    release_path = f"/proxies/acquire/{lease['lease_id']}/release"
    assert_pool_error(bob.request("POST", release_path), 404, "LEASE_NOT_FOUND")
    assert bob.get("/account/leases").json()["items"] == []
    unknown = "/proxies/acquire/00000000-0000-0000-0000-000000000000/release"
    assert_pool_error(alice.request("POST", unknown), 404, "LEASE_NOT_FOUND")

    # Release: the proxy is free at once and the same one is acquired again; no refund.
    released = alice.request("POST", release_path)
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "released"
    assert alice.get("/account/leases").json()["items"] == []
    again = alice.request("POST", "/proxies/acquire", json=only_best)
    assert again.status_code == 200, again.text
    assert again.json()["proxy"]["id"] == best["id"]
    assert again.json()["credits_remaining"] == 1

    # The history: newest first, the grant and both acquires, nothing refunded.
    credits = alice.get("/account/credits").json()
    assert credits["balance"] == 1
    history = [(t["amount"], t["tx_type"]) for t in credits["recent_transactions"]]
    assert history == [(-1, "acquire"), (-1, "acquire"), (3, "grant")]
    assert credits["recent_transactions"][2]["description"] == "Welcome credits"
    assert credits["recent_transactions"][0]["description"] == (
        f"Proxy acquired: {best['host']}:{best['port']}"
    )
    assert second["id"] != best["id"] and dead["status"] == "dead"

    # A proxy that needs a username and password: the lessee gets them in the acquire answer
    # (they are of no use otherwise), and nowhere else.
    (locked,) = insert_proxies(
        server.database_url,
        [with_credentials(proxy_row(status="active", country="LI"), "lessee", "Pw-Of-The-Proxy")],
    )
    root_grant = grant(root, email, 1)
    assert root_grant.status_code == 201, root_grant.text
    with_login = alice.request("POST", "/proxies/acquire", json={"country": "LI"})
    assert with_login.status_code == 200, with_login.text
    assert with_login.json()["proxy"]["id"] == locked["id"]
    assert with_login.json()["proxy"]["credentials"] == {
        "username": "lessee",
        "password": "Pw-Of-The-Proxy",
    }
    assert "Pw-Of-The-Proxy" not in alice.get("/account/leases").text
    assert "Pw-Of-The-Proxy" not in alice.get("/account/credits").text

    # Keys: create (shown once), list (never the key), revoke; someone else's is not found.
    created = alice.request("POST", "/auth/keys", json={"label": "ci"})
    assert created.status_code == 201, created.text
    new_key = created.json()
    assert list(new_key) == ["id", "key", "prefix", "label"] and new_key["label"] == "ci"
    unlabelled = alice.request("POST", "/auth/keys")
    assert unlabelled.status_code == 201 and unlabelled.json()["label"] == "default"
    second_alice = PoolApi(server.base_url, new_key["key"])
    listed = second_alice.get("/auth/keys")
    assert listed.status_code == 200, listed.text
    assert new_key["key"] not in listed.text and issued["key"] not in listed.text
    items = listed.json()["items"]
    assert {item["id"] for item in items} == {
        issued["id"],
        new_key["id"],
        unlabelled.json()["id"],
    }
    for item in items:
        assert list(item) == ["id", "prefix", "label", "created_at", "last_used_at", "revoked_at"]
    assert_pool_error(bob.request("DELETE", f"/auth/keys/{new_key['id']}"), 404, "KEY_NOT_FOUND")
    assert_pool_error(bob.request("DELETE", "/auth/keys/not-an-id"), 404, "KEY_NOT_FOUND")
    assert second_alice.request("DELETE", f"/auth/keys/{new_key['id']}").status_code == 204
    revoked = assert_pool_error(second_alice.get("/account"), 401, "UNAUTHORIZED")
    assert revoked == {}
    assert alice.get("/account").status_code == 200  # the other keys still work
    after = {item["id"]: item for item in alice.get("/auth/keys").json()["items"]}
    assert after[new_key["id"]]["revoked_at"] is not None
    assert after[issued["id"]]["revoked_at"] is None

    # A person registered once: the same email again is a 409.
    assert_pool_error(
        registrar.post(json={"email": email.upper(), "display_name": "Again"}), 409, "EMAIL_TAKEN"
    )


def test_bad_input_is_a_422_naming_the_field(server, registrar, root):
    body, user = registrar.register("carol")
    email = body["user"]["email"]
    insert_proxies(server.database_url, [proxy_row(status="active", country="MT", score=0.5)])
    register = [
        ({"display_name": "No email"}, "email"),
        ({"email": "not-an-address"}, "email"),
        ({"email": 7}, "email"),
        ({"email": "d@example.test", "display_name": 5}, "display_name"),
        ({"email": "d@example.test", "display_name": "x" * 201}, "display_name"),
        ({"email": "d@example.test", "display_name": "a\u202eb"}, "display_name"),
    ]
    keys = [({"label": ""}, "label"), ({"label": 3}, "label"), ({"label": "a\nb"}, "label")]
    grants = [
        ({"amount": value}, "amount") for value in (0, -5, 1.5, "5", True, 10**9 + 1, None)
    ] + [
        ({"amount": 5, "tx_type": "acquire"}, "tx_type"),
        ({"amount": 5, "description": ["x"]}, "description"),
        ({"amount": 5, "description": "x" * 501}, "description"),
        ({"amount": 5, "email": None}, "email"),
        ({"amount": 5, "email": 5}, "email"),
    ]
    acquires = [
        ({name: value}, name)
        for name, value in [
            ("protocol", "ftp"),
            ("protocol", 1),
            ("country", "USA"),
            ("country", ["US"]),
            ("anonymity", "invisible"),
            ("min_score", 2),
            ("min_score", "0.5"),
            ("min_score", True),
            ("min_score", 10**400),  # no float holds it
            ("lease_duration_seconds", 0),
            ("lease_duration_seconds", 3601),
            ("lease_duration_seconds", "300"),
            ("lease_duration_seconds", 1.5),
            ("lease_duration_seconds", False),
        ]
    ]
    sent = (
        [(registrar.anonymous, "/auth/register", payload, f) for payload, f in register]
        + [(user, "/auth/keys", payload, f) for payload, f in keys]
        + [(root, "/account/credits/grant", {"email": email, **p}, f) for p, f in grants]
        + [(user, "/proxies/acquire", payload, f) for payload, f in acquires]
    )
    for api, path, payload, field in sent:
        if path == "/auth/register":
            registrar.attempts += 1
        answer = api.request("POST", path, json=payload)
        details = assert_pool_error(answer, 422, "VALIDATION_ERROR")
        assert details["field"] == field, (path, payload, answer.text)
    # A grant needs a known person; a body must be a JSON object.
    unknown = {"email": "nobody@example.test", "amount": 5}
    assert_pool_error(grant(root, **unknown), 404, "USER_NOT_FOUND")
    assert_pool_error(
        root.request("POST", "/account/credits/grant", data="[1]"), 400, "INVALID_JSON"
    )
    assert_pool_error(user.request("POST", "/proxies/acquire", data="{"), 400, "INVALID_JSON")
    # Nothing was charged or granted by any refused request.
    assert user.get("/account/credits").json() == {"balance": 0, "recent_transactions": []}


def test_pool_credits_from_the_command_line(server, registrar):
    body, user = registrar.register("dave")
    email = body["user"]["email"]
    done = run_admin_cli(
        server, "pool-credits", email, "7", "--type", "purchase", "--description", "Invoice 12"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Added 7 pool credits to {email}; balance 7."
    credits = user.get("/account/credits").json()
    assert credits["balance"] == 7
    assert [
        (t["amount"], t["tx_type"], t["description"]) for t in credits["recent_transactions"]
    ] == [(7, "purchase", "Invoice 12")]
    refused = run_admin_cli(server, "pool-credits", email, "0")
    assert refused.returncode != 0 and "amount" in refused.stderr
    with make_session_factory(server.engine)() as session:
        stored = session.scalars(
            select(PoolCreditTransaction).where(PoolCreditTransaction.user_id == body["user"]["id"])
        ).all()
    assert [(t.amount, t.created_by) for t in stored] == [(7, "cli")]


def test_registration_is_limited_per_address(server, registrar):
    """Last in this file: every registration attempt of the module counted."""
    allowed = REGISTER_PER_HOUR - registrar.attempts
    assert allowed > 0
    for n in range(allowed):
        assert registrar.post(json={"email": f"flood-{n}@example.test"}).status_code == 201
    limited = registrar.post(json={"email": "one-more@example.test"})
    assert_pool_error(limited, 429, "TOO_MANY_REGISTRATIONS")
    assert int(limited.headers["Retry-After"]) > 0
    with make_session_factory(server.engine)() as session:
        assert session.scalar(select(User).where(User.email == "one-more@example.test")) is None
