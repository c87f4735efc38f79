"""Pool users for the sources tests: a user and a `pp_` key written straight into an admin's
store (as `create-user`, `platform-admin` and `pool-key` would, without three processes)."""

from __future__ import annotations

import requests

from models import User
from models.store import make_session_factory
from pool.keys import issue_key
from tests.pool_support import PoolApi, assert_pool_error, store_engine
from tests.support import AdminServer


def pool_user(server: AdminServer, email: str, platform_admin: bool = False) -> PoolApi:
    """A new user of `server`'s store and a `pp_` key of theirs, as an API client."""
    with make_session_factory(store_engine(server.database_url))() as session:
        user = User(email=email, name=email.split("@")[0], platform_admin=platform_admin)
        session.add(user)
        session.flush()
        _, raw = issue_key(session, user)
        session.commit()
    return PoolApi(server.base_url, raw)


def pool_error(response: requests.Response, status: int, code: str) -> dict:
    """Seed 003's error shape with `status` and `code`: the whole error (code, message,
    details)."""
    assert_pool_error(response, status, code)
    return response.json()["error"]
