"""The data plane's configuration snapshot, built from a live admin's store."""

from __future__ import annotations

import pytest
from sqlalchemy import column, select, update
from sqlalchemy import table as sql_table

from addons.snapshot_source import SnapshotSource
from models.crypto import KeyRing
from models.store import make_engine
from tests.support import TEST_MASTER_KEYS, create, new_client, new_proxy

WAIT_S = 5


def table(name: str):
    """Just the columns these tests touch, for raw reads and writes of the store."""
    return sql_table(name, column("id"), column("secret_ciphertext"))


@pytest.fixture
def source(admin_server):
    engine = make_engine(admin_server.database_url)
    source = SnapshotSource(engine, KeyRing.parse(TEST_MASTER_KEYS), poll_interval=0.05)
    source.start()
    yield source
    source.stop()
    engine.dispose()


def config_version(api) -> int:
    return api.get("/health").json()["configVersion"]


def test_snapshot_holds_compiled_proxies_with_open_secrets(api, client_id, source):
    proxy = new_proxy(api, client_id, proxyAlias="billing")
    rules = f"/api/clients/{client_id}/proxies/{proxy['sKey']}/rules"
    rule = create(api, rules, {"effect": "deny", "methods": ["DELETE"]}, "rules")
    assert source.wait_for_version(config_version(api), WAIT_S)

    view = source.current.proxies[proxy["sKey"]]
    assert view.client_id == client_id and view.alias == "billing"
    assert view.target_credential.secret == {"token": "target-token-0123456789"}
    assert view.proxy_credential.settings == {"in": "header", "name": "Authorization"}
    assert view.target.base_url.hostname == "127.0.0.1"
    assert [r.id for r in view.scope.rules] == [rule["ruleId"]]
    assert [s.name for s in view.scopes] == [
        "proxyCredential",
        "targetCredential",
        "proxy",
        "target",
    ]
    assert view in source.current.candidates("billing")


def test_changes_in_the_admin_replace_the_snapshot(api, client_id, source):
    proxy = new_proxy(api, client_id)
    assert source.wait_for_version(config_version(api), WAIT_S)
    assert source.current.proxies[proxy["sKey"]].active

    api.put(f"/api/clients/{client_id}/proxies/{proxy['sKey']}", json={"proxyActive": False})
    assert source.wait_for_version(config_version(api), WAIT_S)
    assert not source.current.proxies[proxy["sKey"]].active

    api.delete(f"/api/clients/{client_id}/proxies/{proxy['sKey']}")
    assert source.wait_for_version(config_version(api), WAIT_S)
    assert proxy["sKey"] not in source.current.proxies


def test_an_alias_shared_by_two_clients_yields_both_candidates(api, source):
    first = new_proxy(api, new_client(api), proxyAlias="shared-name")
    second = new_proxy(api, new_client(api), proxyAlias="shared-name")
    assert source.wait_for_version(config_version(api), WAIT_S)
    found = {view.id for view in source.current.candidates("shared-name")}
    assert {first["sKey"], second["sKey"]} <= found
    assert source.current.candidates("no-such-proxy") == ()


def test_a_snapshot_that_cannot_be_built_keeps_the_last_one_and_polling_goes_on(lone):
    """Any failure of a build (here a secret that no longer decrypts) keeps the last good
    configuration, and the next changes are still picked up once it builds again."""
    server, api = lone
    client_id = new_client(api)
    first = new_proxy(api, client_id)
    engine = make_engine(server.database_url)
    source = SnapshotSource(engine, KeyRing.parse(TEST_MASTER_KEYS), poll_interval=0.05)
    source.start()
    try:
        assert source.wait_for_version(config_version(api), WAIT_S)
        credential_id = source.current.proxies[first["sKey"]].target_credential.id
        credentials = table("credentials")
        with engine.begin() as connection:
            sealed = connection.execute(
                select(credentials.c.secret_ciphertext).where(credentials.c.id == credential_id)
            ).scalar_one()
            connection.execute(
                update(credentials)
                .where(credentials.c.id == credential_id)
                .values(secret_ciphertext=bytes(len(sealed)))
            )
        broken = new_proxy(api, client_id)  # a new version, which cannot be built
        assert not source.wait_for_version(config_version(api), 1), "built with a broken secret"
        assert first["sKey"] in source.current.proxies, "the last good snapshot was dropped"

        with engine.begin() as connection:
            connection.execute(
                update(credentials)
                .where(credentials.c.id == credential_id)
                .values(secret_ciphertext=sealed)
            )
        later = new_proxy(api, client_id)
        assert source.wait_for_version(config_version(api), WAIT_S), "polling stopped"
        assert {broken["sKey"], later["sKey"]} <= set(source.current.proxies)
    finally:
        source.stop()
        engine.dispose()
