"""`targetEgress` through the Core API: every input case, sealed proxy credentials that no
answer shows, the keep/drop rule on update, and the configuration version the data plane
polls. Real admin process, real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
from dataclasses import replace
from urllib.parse import quote

from sqlalchemy import select

from admin.cli import rotate_secrets
from admin.web.egress_probe import EgressProbe, probe_egress
from models import Client, Target, current_config_version
from models.crypto import KeyRing
from models.egress import FixedEgress, PoolEgress, apply_egress, open_egress
from models.ids import new_id
from models.ssrf_policy import parse_allowances
from models.store import make_session_factory
from tests.pool_proxies import ProxyFarm, dead_port, tls_files
from tests.support import (
    TEST_MASTER_KEYS,
    assert_invalid,
    create,
    target_body,
)

USER = "egress-user-7f3a"
PASSWORD = "p@ss:w/rd-9c1d"  # characters that must be percent-encoded in a URL
USERINFO = f"{quote(USER, safe='')}:{quote(PASSWORD, safe='')}"
KEY_RING = KeyRing.parse(TEST_MASTER_KEYS)

# (targetEgress sent, the sub-field the 400 must name)
BAD_INPUTS = [
    ("proxy", "mode"),
    ({}, "mode"),
    ({"mode": "tunnel"}, "mode"),
    ({"mode": "direct", "url": "http://h:1"}, "url"),
    ({"mode": "proxy"}, "url"),
    ({"mode": "proxy", "url": 5}, "url"),
    ({"mode": "proxy", "url": "ftp://proxy.test:21"}, "url"),
    ({"mode": "proxy", "url": "socks5://proxy.test"}, "url"),
    ({"mode": "proxy", "url": "http://proxy.test"}, "url"),
    ({"mode": "proxy", "url": "http://proxy.test:0"}, "url"),
    ({"mode": "proxy", "url": "http://proxy.test:70000"}, "url"),
    ({"mode": "proxy", "url": "http://proxy.test:3128/path"}, "url"),
    ({"mode": "proxy", "url": "http://proxy.test:3128?q=1"}, "url"),
    ({"mode": "proxy", "url": "http://proxy.test:3128#f"}, "url"),
    ({"mode": "proxy", "url": "http://:3128"}, "url"),
    ({"mode": "proxy", "url": "http://bad host:3128"}, "url"),
    ({"mode": "proxy", "url": "http://bad!host:3128"}, "url"),
    ({"mode": "proxy", "url": f"http://:{quote(PASSWORD, safe='')}@proxy.test:3128"}, "url"),
    ({"mode": "proxy", "url": f"http://{USER}:pw%0A@proxy.test:3128"}, "url"),
    ({"mode": "proxy", "url": f"http://{'u' * 256}:pw@proxy.test:3128"}, "url"),
    ({"mode": "proxy", "url": "http://proxy.test:3128", "clearCredentials": "yes"},
     "clearCredentials"),
    ({"mode": "proxy", "url": "http://proxy.test:3128", "country": "DE"}, "country"),
    ({"mode": "pool", "protocol": "ftp"}, "protocol"),
    ({"mode": "pool", "country": "DEU"}, "country"),
    ({"mode": "pool", "country": 49}, "country"),
    ({"mode": "pool", "anonymity": "secret"}, "anonymity"),
    ({"mode": "pool", "minScore": 1.5}, "minScore"),
    ({"mode": "pool", "minScore": -0.1}, "minScore"),
    ({"mode": "pool", "minScore": True}, "minScore"),
    ({"mode": "pool", "minScore": "0.5"}, "minScore"),
    ({"mode": "pool", "rotation": "random"}, "rotation"),
    ({"mode": "pool", "rotation": "sticky", "stickySeconds": 0}, "stickySeconds"),
    ({"mode": "pool", "rotation": "sticky", "stickySeconds": 86401}, "stickySeconds"),
    ({"mode": "pool", "rotation": "sticky", "stickySeconds": 1.5}, "stickySeconds"),
    ({"mode": "pool", "url": "http://proxy.test:3128"}, "url"),
]  # fmt: skip


def _stored(server, target_id: str) -> Target:
    with make_session_factory(server.engine)() as session:
        target = session.scalars(select(Target).where(Target.id == target_id)).one()
        session.expunge(target)
        return target


def _config_version(server) -> int:
    with make_session_factory(server.engine)() as session:
        return current_config_version(session)


def _no_secret(text: str) -> None:
    for secret in (USER, PASSWORD, quote(PASSWORD, safe=""), USERINFO):
        assert secret not in text


def test_every_bad_egress_input_is_a_400_naming_its_field(api, client_id):
    targets = f"/api/clients/{client_id}/targets"
    target = create(api, targets, target_body(), "targets")
    one = f"{targets}/{target['targetId']}"
    for sent, field in BAD_INPUTS:
        created = api.post(targets, json=target_body(targetEgress=sent))
        assert_invalid(created, f"targetEgress.{field}")
        _no_secret(created.text)
        updated = api.put(one, json={"targetEgress": sent})
        assert_invalid(updated, f"targetEgress.{field}")
        _no_secret(updated.text)
    # Nothing was stored by the refused requests.
    listed = api.get(targets).json()["targets"]
    assert [t["targetId"] for t in listed] == [target["targetId"]]
    assert listed[0]["targetEgress"] is None


def test_good_inputs_are_answered_normalised(api, client_id):
    targets = f"/api/clients/{client_id}/targets"
    cases = [
        (None, None),
        ({"mode": "direct"}, None),
        (
            {"mode": "proxy", "url": "SOCKS5://Proxy.Test:1080/"},
            {"mode": "proxy", "url": "socks5://proxy.test:1080", "hasCredentials": False},
        ),
        (
            {"mode": "proxy", "url": "http://[::1]:3128"},
            {"mode": "proxy", "url": "http://[::1]:3128", "hasCredentials": False},
        ),
        (
            {"mode": "pool"},
            {
                "mode": "pool", "protocol": None, "country": None, "anonymity": None,
                "minScore": None, "rotation": "per_request", "stickySeconds": 60,
            },
        ),
        (
            {
                "mode": "pool", "protocol": "SOCKS5", "country": "de", "anonymity": "elite",
                "minScore": 1, "rotation": "sticky", "stickySeconds": 300,
            },
            {
                "mode": "pool", "protocol": "socks5", "country": "DE", "anonymity": "elite",
                "minScore": 1.0, "rotation": "sticky", "stickySeconds": 300,
            },
        ),
    ]  # fmt: skip
    for sent, answered in cases:
        [target] = api.post(targets, json=target_body(targetEgress=sent)).json()["targets"]
        assert target["targetEgress"] == answered, sent
        got = api.get(f"{targets}/{target['targetId']}").json()["targets"][0]
        assert got["targetEgress"] == answered
    listed = [t["targetEgress"] for t in api.get(targets).json()["targets"]]
    assert listed == [answered for _, answered in cases]


def test_proxy_credentials_are_sealed_never_answered_and_kept_or_dropped(
    api, client_id, admin_server
):
    targets = f"/api/clients/{client_id}/targets"
    with_credentials = {"mode": "proxy", "url": f"socks5://{USERINFO}@proxy.test:1080"}
    before = _config_version(admin_server)
    created = api.post(targets, json=target_body(targetEgress=with_credentials))
    assert created.status_code == 201, created.text
    _no_secret(created.text)
    [target] = created.json()["targets"]
    one = f"{targets}/{target['targetId']}"
    expected = {"mode": "proxy", "url": "socks5://proxy.test:1080", "hasCredentials": True}
    assert target["targetEgress"] == expected
    for answer in (api.get(one), api.get(targets)):
        _no_secret(answer.text)
        assert expected in [t["targetEgress"] for t in answer.json()["targets"]]
    assert _config_version(admin_server) > before

    # The store holds them sealed only; the key ring opens them for the data plane.
    stored = _stored(admin_server, target["targetId"])
    assert stored.egress == {"mode": "proxy", "url": "socks5://proxy.test:1080"}
    assert stored.egress_secret_key_id == "ktest"
    assert USER.encode() not in stored.egress_secret_ciphertext
    assert PASSWORD.encode() not in stored.egress_secret_ciphertext
    opened = open_egress(stored, KEY_RING)
    assert opened == FixedEgress(
        "socks5://proxy.test:1080", "socks5", "proxy.test", 1080, USER, PASSWORD
    )
    assert USER not in repr(opened) and PASSWORD not in repr(opened)

    def put(egress, **more) -> dict:
        response = api.put(one, json={"targetEgress": egress, **more})
        assert response.status_code == 200, response.text
        _no_secret(response.text)
        return response.json()["targets"][0]["targetEgress"]

    def credentials() -> tuple[str | None, str | None]:
        egress = open_egress(_stored(admin_server, target["targetId"]), KEY_RING)
        return egress.username, egress.password

    # Other fields change: the egress stays as it is.
    renamed = api.put(one, json={"targetName": "Renamed"}).json()["targets"][0]
    assert renamed["targetEgress"] == expected
    # A fetched target PUT back as it is (hasCredentials included) keeps them.
    fetched = api.get(one).json()["targets"][0]
    assert api.put(one, json=fetched).json()["targets"][0]["targetEgress"] == expected
    assert credentials() == (USER, PASSWORD)
    # The same host and port without userinfo (even another scheme): kept.
    assert put({"mode": "proxy", "url": "http://proxy.test:1080"})["hasCredentials"] is True
    assert credentials() == (USER, PASSWORD)
    # Only the password changes: the sealed column changes, and so does the config version.
    before = _config_version(admin_server)
    put({"mode": "proxy", "url": f"http://{USER}:new-secret@proxy.test:1080"})
    assert credentials() == (USER, "new-secret")
    assert _config_version(admin_server) > before
    # clearCredentials drops them on the same endpoint.
    assert put({**with_credentials, "url": "http://proxy.test:1080"}, targetName="x") == {
        "mode": "proxy", "url": "http://proxy.test:1080", "hasCredentials": True,
    }  # fmt: skip
    cleared = put({"mode": "proxy", "url": "http://proxy.test:1080", "clearCredentials": True})
    assert cleared["hasCredentials"] is False
    assert credentials() == (None, None)
    # Another host, or another port, drops them.
    put(with_credentials)
    assert put({"mode": "proxy", "url": "socks5://other.test:1080"})["hasCredentials"] is False
    put(with_credentials)
    assert put({"mode": "proxy", "url": "socks5://proxy.test:1081"})["hasCredentials"] is False
    # Pool or direct drop them too, and switching back does not bring them back.
    put(with_credentials)
    pool = put({"mode": "pool", "country": "NL", "rotation": "sticky", "stickySeconds": 30})
    assert pool["country"] == "NL" and pool["rotation"] == "sticky"
    stored = _stored(admin_server, target["targetId"])
    assert stored.egress_secret_ciphertext is None and stored.egress_secret_key_id is None
    assert open_egress(stored, KEY_RING) == PoolEgress(
        country="NL", rotation="sticky", sticky_seconds=30
    )
    assert put({"mode": "proxy", "url": "socks5://proxy.test:1080"})["hasCredentials"] is False
    put(with_credentials)
    assert put(None) is None
    stored = _stored(admin_server, target["targetId"])
    assert stored.egress is None and stored.egress_secret_ciphertext is None
    assert put({"mode": "proxy", "url": "socks5://proxy.test:1080"})["hasCredentials"] is False


def test_test_through_egress_checks_the_url_and_uses_the_sealed_credentials(
    api, client_id, admin_server, upstream, tmp_path, monkeypatch
):
    """The admin's "Test through egress" (in process, on this admin's store): through a real
    proxy that demands the sealed password; the target URL under the SSRF policy (loopback
    refused unless allowed); a dead proxy; a pool with no match; a direct target."""
    targets = f"/api/clients/{client_id}/targets"
    allowed = admin_server.settings(allow_targets=parse_allowances("127.0.0.0/8"))
    strict = admin_server.settings()  # no PORTCULLIS_ALLOW_TARGETS: loopback is refused
    with ProxyFarm() as farm:
        proxy = farm.http("fixed", "elite", "127.0.0.73", credentials=(USER, PASSWORD))
        dead = dead_port("127.0.0.74")
        ca, cert, key = tls_files(tmp_path)
        tls_port = farm.tls_front(farm.http("fronted", "elite", "127.0.0.1").port, cert, key)

        def probe(egress: dict | None, settings) -> EgressProbe:
            body = target_body(
                targetBaseURL=upstream.base_url + "/through", targetTestPath="/status/204",
                targetEgress=egress,
            )  # fmt: skip
            target = create(api, targets, body, "targets")
            with make_session_factory(admin_server.engine)() as session:
                stored = session.get(Target, target["targetId"])
                return probe_egress(session, settings, KEY_RING, stored)

        fixed = {"mode": "proxy", "url": f"http://{USERINFO}@{proxy.host}:{proxy.port}"}
        reached = probe(fixed, allowed)
        assert (reached.reachable, reached.status, reached.error) == (True, 204, None)
        assert reached.url == f"{upstream.base_url}/through/status/204"
        assert reached.via == f"proxy http://{proxy.host}:{proxy.port}"
        without_password = probe({**fixed, "url": f"http://{proxy.host}:{proxy.port}"}, allowed)
        assert not without_password.reachable and "407" in without_password.error

        refused = probe(fixed, strict)
        assert not refused.reachable and refused.status is None
        assert "loopback" in refused.error and "PORTCULLIS_ALLOW_TARGETS" in refused.error

        down = probe({"mode": "proxy", "url": f"socks5://127.0.0.74:{dead}"}, allowed)
        assert not down.reachable and down.error
        nothing = probe({"mode": "pool", "country": "QQ"}, allowed)
        assert not nothing.reachable and "No free active pool proxy" in nothing.error
        # An https:// proxy: TLS to the proxy itself (its certificate from a throwaway CA).
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        tls_proxy = probe({"mode": "proxy", "url": f"https://127.0.0.1:{tls_port}"}, allowed)
        assert (tls_proxy.reachable, tls_proxy.status) == (True, 204), tls_proxy
        direct = probe(None, allowed)
        assert not direct.reachable and "directly" in direct.error
        for result in (reached, without_password, refused, down, nothing, direct):
            _no_secret(repr(result))


def test_rotate_secrets_reseals_egress_credentials(settings, sessions):
    """`run_admin.py rotate-secrets` (its function, on a scratch store) re-seals a target's
    egress credentials with the new active key; the old key is no longer needed."""
    with sessions() as session:
        client = Client(name="Rotate")
        session.add(client)
        session.flush()
        target = Target(id=new_id("target"), client_id=client.id, **_columns(target_body()))
        apply_egress(target, KEY_RING, {"mode": "proxy", "url": f"socks5://{USERINFO}@h.test:1"})
        session.add(target)
        session.commit()
        target_id = target.id
    new_key = "knew:" + base64.b64encode(bytes(range(32, 64))).decode()
    assert rotate_secrets(replace(settings, master_keys=f"{new_key},{TEST_MASTER_KEYS}")) == 1
    with sessions() as session:
        stored = session.get(Target, target_id)
        assert stored.egress_secret_key_id == "knew"
        opened = open_egress(stored, KeyRing.parse(new_key))
        assert (opened.username, opened.password) == (USER, PASSWORD)


def _columns(body: dict) -> dict:
    return {"name": body["targetName"], "base_url": body["targetBaseURL"],
            "region": body["targetRegion"]}  # fmt: skip
