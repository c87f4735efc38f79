"""PostgreSQL's counterpart of test_health's clobbered SQLite files: the database refuses
connections under a running admin and data plane, then takes them again."""

from __future__ import annotations

import pytest

from tests import stores
from tests.proxy_support import call
from tests.support import answering, poll
from tests.test_health import (
    HEALTH,
    admin_health,
    assert_admin_shape,
    lone_proxy,  # noqa: F401  (the fixture, shared with test_health)
)


@pytest.mark.postgresql_only
def test_a_database_that_refuses_connections_turns_both_health_answers_to_503(lone_proxy):  # noqa: F811
    server, gateway = lone_proxy
    assert admin_health(server).status_code == 200
    assert call(gateway, "GET", HEALTH).status_code == 200
    stores.server().set_reachable(server.database_url, False)
    try:
        response = poll(answering(503, lambda: admin_health(server)))
        assert response is not None, "the admin kept answering 200 without its store"
        assert_admin_shape(response.json(), server, "unreachable")
        data_plane = poll(answering(503, lambda: call(gateway, "GET", HEALTH)))
        assert data_plane is not None, "the data plane kept answering 200 without its store"
        assert data_plane.json()["error"]["code"] == "STORE_UNREACHABLE"
    finally:
        stores.server().set_reachable(server.database_url, True)

    assert poll(answering(200, lambda: admin_health(server))) is not None, "no recovery"
    assert poll(answering(200, lambda: call(gateway, "GET", HEALTH))) is not None, "no recovery"
