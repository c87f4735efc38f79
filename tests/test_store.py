"""The store's pure logic and its config version, on a real migrated SQLite file."""

from __future__ import annotations

import base64
import os

import pytest
from sqlalchemy import inspect

from models import Client, Credential, Proxy, Rule, Target, User, current_config_version
from models.crypto import KeyRing, KeyRingError, SecretDecryptionError, load_key_ring
from models.patterns import PatternError, check_flags, compile_pattern
from models.store import make_engine


def ring(*ids: str) -> KeyRing:
    return KeyRing([(key_id, os.urandom(32)) for key_id in ids])


def test_seal_and_open_round_trip_with_fresh_nonces():
    keys = ring("k1")
    first, second = (
        keys.seal({"token": "s3cret"}, "cred_a"),
        keys.seal({"token": "s3cret"}, "cred_a"),
    )
    assert first.ciphertext != second.ciphertext
    assert b"s3cret" not in first.ciphertext
    assert keys.open(first, "cred_a") == {"token": "s3cret"}


def test_secret_is_bound_to_its_record_id():
    keys = ring("k1")
    sealed = keys.seal({"token": "s3cret"}, "cred_a")
    with pytest.raises(SecretDecryptionError):
        keys.open(sealed, "cred_b")


def test_old_keys_still_open_after_rotation():
    old_key = os.urandom(32)
    sealed = KeyRing([("old", old_key)]).seal({"v": 1}, "cred_a")
    rotated = KeyRing([("new", os.urandom(32)), ("old", old_key)])
    assert rotated.active_key_id == "new"
    assert rotated.open(sealed, "cred_a") == {"v": 1}
    with pytest.raises(SecretDecryptionError):
        ring("new").open(sealed, "cred_a")


@pytest.mark.parametrize(
    "text",
    ["", "no-colon", "k1:not base64!", "k1:" + base64.b64encode(b"short").decode()],
)
def test_bad_key_rings_are_refused(text):
    with pytest.raises(KeyRingError):
        KeyRing.parse(text)


def test_generated_key_file_is_owner_only_and_reused(tmp_path):
    key_file = tmp_path / "var" / "master.keys"
    first, generated = load_key_ring(None, key_file)
    assert generated and key_file.stat().st_mode & 0o777 == 0o600
    second, generated_again = load_key_ring(None, key_file)
    assert not generated_again and second.active_key_id == first.active_key_id


def test_patterns_use_flags_and_refuse_backtracking_constructs():
    assert compile_pattern("^/api/users", "i").search("/API/USERS/1")
    assert not compile_pattern("^/api/users").search("/API/USERS/1")
    for bad in ["(a)\\1", "(?<=x)y", "(", "a{2,1}"]:
        with pytest.raises(PatternError):
            compile_pattern(bad)
    assert check_flags("mig") == "gim"
    with pytest.raises(PatternError):
        check_flags("x")


def test_migrations_create_every_table(settings, sessions):
    tables = set(inspect(make_engine(settings.database_url)).get_table_names())
    assert {"users", "user_tokens", "clients", "memberships", "credentials", "targets"} <= tables
    assert {"proxies", "rules", "config_state", "alembic_version"} <= tables


def test_every_configuration_write_bumps_the_version(sessions):
    keys = ring("k1")
    with sessions() as session:
        start = current_config_version(session)
        user = User(email="a@example.test")
        session.add(user)
        session.commit()
        assert current_config_version(session) == start, "users are not configuration"

        client = Client(name="c", configuration={}, created_by=user.id)
        session.add(client)
        session.commit()
        assert current_config_version(session) == start + 1

        creds = []
        for kind in ("proxy", "target"):
            credential = Credential(
                client_id=client.id, name=kind, credential_type=kind, auth_type="bearer",
                region="r1", settings={},
            )  # fmt: skip
            credential.set_secret(keys, {"token": "t"})
            creds.append(credential)
        target = Target(client_id=client.id, name="t", base_url="https://x.test", region="r1")
        session.add_all([*creds, target])
        session.commit()
        proxy = Proxy(
            client_id=client.id, name="p", region="r1", proxy_credential_id=creds[0].id,
            target_id=target.id, target_credential_id=creds[1].id, max_requests_per_minute=1,
            max_requests_per_day=1,
        )  # fmt: skip
        session.add(proxy)
        session.commit()
        rule = Rule(client_id=client.id, proxy_id=proxy.id, effect="deny")
        session.add(rule)
        session.commit()
        after_creates = current_config_version(session)
        assert after_creates == start + 4

        rule.notes = "changed"
        session.commit()
        assert current_config_version(session) == after_creates + 1
        session.delete(client)
        session.commit()
        assert current_config_version(session) == after_creates + 2
        assert session.get(Proxy, proxy.id) is None and session.get(Rule, rule.id) is None
