"""Pool users for the sources tests: a user (`tests.support.create_user`) and a `pp_` key
written straight into an admin's store (as `pool-key` would, without a process)."""

from __future__ import annotations

import requests

from models import User
from models.store import make_session_factory
from pool.keys import issue_key
from tests.pool_support import PoolApi, assert_pool_error
from tests.support import AdminServer, create_user


def pool_user(server: AdminServer, email: str, platform_admin: bool = False) -> PoolApi:
    """A new user of `server`'s store and a `pp_` key of theirs, as an API client."""
    created = create_user(server, email, email.split("@")[0], platform_admin=platform_admin)
    with make_session_factory(server.engine)() as session:
        _, raw = issue_key(session, session.get(User, created.id))
        session.commit()
    return PoolApi(server.base_url, raw)


def pool_error(response: requests.Response, status: int, code: str) -> dict:
    """Seed 003's error shape with `status` and `code`: the whole error (code, message,
    details)."""
    assert_pool_error(response, status, code)
    return response.json()["error"]
