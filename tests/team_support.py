"""Users on an admin of a test's own (stored as `run_admin.py create-user` does), and invite
helpers."""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy import update

from models import Invite
from models.store import make_engine
from tests.support import AdminServer, User, create_user

_numbers = itertools.count(1)


def user_on(server: AdminServer, name: str, email: str | None = None) -> User:
    """A new user of `server`, with a token."""
    email = email or f"team{next(_numbers)}-{name.split()[0].lower()}@example.test"
    return create_user(server, email, name)


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
