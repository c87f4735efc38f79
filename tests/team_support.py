"""Users on an admin of a test's own (`run_admin.py create-user`), and invite helpers."""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy import update

from models import Invite
from models.store import make_engine
from tests.support import AdminServer, Api, User, run_admin_cli

_numbers = itertools.count(1)


def user_on(server: AdminServer, name: str, email: str | None = None) -> User:
    """A new user of `server`, with a token (the last line `create-user` prints)."""
    email = email or f"team{next(_numbers)}-{name.split()[0].lower()}@example.test"
    result = run_admin_cli(server, "create-user", email, "--name", name)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    me = Api(server.base_url, token).get("/api/users/me")
    assert me.status_code == 200, me.text
    return User(me.json()["users"][0]["userId"], email, token)


def token_of(invite_url: str) -> str:
    """The link token at the end of an invite link (`{base}/ui/invites/{token}`)."""
    head, _, token = invite_url.rpartition("/ui/invites/")
    assert head and token.startswith("pci_"), invite_url
    return token


def set_invite_expiry(server: AdminServer, invite_id: str, moment: datetime) -> None:
    """Move an invite's expiry in the store (time cannot be waited for in a test)."""
    engine = make_engine(server.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Invite).where(Invite.id == invite_id).values(expires_at=moment)
            )
    finally:
        engine.dispose()
