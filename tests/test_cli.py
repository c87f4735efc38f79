"""`run_admin.py` as an operator uses it: first start, create-user, rotate-secrets."""

from __future__ import annotations

import base64
import re

from models import Credential
from models.crypto import KeyRing
from models.store import make_engine, make_session_factory
from tests.support import (
    TEST_MASTER_KEYS,
    Api,
    credential_body,
    new_client,
    run_admin_cli,
    run_admin_cli_in_process,
    start_admin,
)

TOKEN_LINE = re.compile(r"^\s*(u-[A-Za-z0-9_-]{20,})\s*$", re.MULTILINE)


def test_first_start_generates_a_key_and_a_first_user(tmp_path):
    server = start_admin(tmp_path / "var", master_keys=None)
    try:
        log = server.log_text()
        key_file = server.var_dir / "master.keys"
        assert f"generated a master key in {key_file}" in log
        assert key_file.stat().st_mode & 0o777 == 0o600
        tokens = TOKEN_LINE.findall(log)
        assert len(tokens) == 1, "the first user's token is printed once"
        me = Api(server.base_url, tokens[0]).get("/api/users/me")
        assert me.status_code == 200 and me.json()["users"][0]["email"] == "admin@localhost"
    finally:
        server.stop()

    again = start_admin(tmp_path / "var", master_keys=None)
    try:
        log = again.log_text()
        assert "generated a master key" not in log and "Using the master key" in log
        assert TOKEN_LINE.findall(log) == [], "no second bootstrap user"
    finally:
        again.stop()


def test_create_user_prints_only_the_token_on_its_last_line(admin_server):
    result = run_admin_cli(admin_server, "create-user", "Script@Example.test", "--name", "Bot")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert TOKEN_LINE.fullmatch(token)
    me = Api(admin_server.base_url, token).get("/api/users/me").json()["users"][0]
    assert (me["email"], me["name"]) == ("script@example.test", "Bot")

    duplicate = run_admin_cli(admin_server, "create-user", "script@example.test")
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    invalid = run_admin_cli_in_process(admin_server, "create-user", "not-an-email")
    assert invalid.returncode != 0 and "not an email address" in invalid.stderr


def test_rotate_secrets_reseals_with_the_new_key(tmp_path):
    server = start_admin(tmp_path / "var")
    try:
        api = Api(server.base_url, TOKEN_LINE.findall(server.log_text())[0])
        client_id = new_client(api)
        body = credential_body("target", "bearer", credentialSecret={"token": "rotate-me-123"})
        assert api.post(f"/api/clients/{client_id}/credentials", json=body).status_code == 201
    finally:
        server.stop()

    new_entry = "knew:" + base64.b64encode(bytes(range(32, 64))).decode()
    server.env["PORTCULLIS_MASTER_KEYS"] = f"{new_entry},{TEST_MASTER_KEYS}"
    result = run_admin_cli(server, "rotate-secrets")
    assert result.returncode == 0, result.stderr
    assert "Re-sealed 1 credential secret(s)." in result.stdout

    only_new = KeyRing.parse(new_entry)
    engine = make_engine(server.database_url)
    with make_session_factory(engine)() as session:
        credential = session.query(Credential).one()
        assert credential.secret_key_id == "knew"
        assert credential.open_secret(only_new) == {"token": "rotate-me-123"}
    engine.dispose()
