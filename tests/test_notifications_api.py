"""Notifications of three kinds (system, user, client): read per user, filtered, paged, and
never shown across tenants; the events core that records them (dedup, notifier outbox).

The API tests use an admin of this module's own, so the system notifications counted
here are only the ones these tests post.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models import Client, Notification, Notifier, NotifierDelivery, User
from models.events import EVENTS, Event, matches, record_event
from tests.support import (
    AdminServer,
    Api,
    add_member,
    assert_error,
    assert_invalid,
    new_client,
    run_admin_cli,
    run_admin_cli_in_process,
    start_admin,
)
from tests.team_support import token_of, user_on


@pytest.fixture(scope="module")
def own_admin(tmp_path_factory) -> AdminServer:
    server = start_admin(tmp_path_factory.mktemp("notifications-admin"))
    yield server
    server.stop()


def items(response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["notifications"]


def walk(api: Api, path: str, limit: int, **params) -> list[list[dict]]:
    """Every page of a list, following nextToken."""
    pages, token = [], None
    while True:
        query = {"limit": limit, **params} | ({"nextToken": token} if token else {})
        response = api.get(path, params=query)
        pages.append(items(response))
        token = response.json()["nextToken"]
        if token is None:
            return pages


def test_three_kinds_read_per_user_paged_and_fenced_by_tenant(own_admin):
    owner = user_on(own_admin, "Olga Owner")
    bea = user_on(own_admin, "Bea Member")
    carl = user_on(own_admin, "Carl Joiner")
    eve = user_on(own_admin, "Eve Elsewhere")
    api = Api(own_admin.base_url, owner.token)
    as_bea, as_carl, as_eve = api.as_user(bea), api.as_user(carl), api.as_user(eve)
    client_id = new_client(api, "Signals")
    eve_client = new_client(as_eve, "Eve's")

    # A user notification: an owner adds Bea. A client one and Carl's own: Carl accepts an invite.
    add_member(api, client_id, bea, "user")
    [added] = items(as_bea.get(f"/api/users/{bea.id}/notifications"))
    assert added["type"] == "user" and added["event"] == "member.added"
    assert added["pKey"] == bea.id and added["sKey"] == added["notificationId"]
    assert added["title"] == "You were added to Signals as user" and added["read"] is False
    sent = api.post(
        f"/api/clients/{client_id}/invites", json={"email": carl.email, "roles": ["user"]}
    ).json()["invites"][0]
    accepted = as_carl.post(f"/api/invites/{token_of(sent['inviteUrl'])}/accept")
    assert accepted.status_code == 200, accepted.text
    client_path = f"/api/clients/{client_id}/notifications"
    [joined] = items(api.get(client_path))
    assert joined["type"] == "client" and joined["pKey"] == client_id
    assert joined["event"] == "invite.accepted" and "Carl Joiner" in joined["title"]

    # Read is per user: the owner opening it leaves it unread for Bea.
    opened = items(api.get(f"{client_path}/{joined['notificationId']}"))
    assert opened[0]["read"] is True
    assert items(api.get(client_path))[0]["read"] is True
    assert items(api.get(client_path, params={"unread": "true"})) == []
    assert api.get(client_path).json()["unreadCount"] == 0
    assert items(as_bea.get(client_path, params={"unread": "true"}))[0]["read"] is False
    assert as_bea.get(client_path).json()["unreadCount"] == 1

    # Cross-tenant probes: 404 for client AND user notifications, whatever the id.
    user_path = f"/api/users/{bea.id}/notifications"
    probes = [
        as_eve.get(client_path),
        as_eve.get(f"{client_path}/{joined['notificationId']}"),
        as_eve.get(f"/api/clients/{eve_client}/notifications/{joined['notificationId']}"),
        as_eve.get(user_path),
        as_eve.get(f"{user_path}/{added['notificationId']}"),
        as_eve.get(f"/api/users/{eve.id}/notifications/{added['notificationId']}"),
        as_eve.get(f"/api/notifications/system/{joined['notificationId']}"),
        api.get(f"{client_path}/{added['notificationId']}"),
    ]
    for probe in probes:
        assert_error(probe, 404, "NOT_FOUND")
    assert items(as_eve.get(f"/api/clients/{eve_client}/notifications")) == []
    assert items(as_bea.get(f"{user_path}/{added['notificationId']}"))[0]["read"] is True
    assert items(as_bea.get("/api/users/me/notifications"))[0]["read"] is True

    # System notifications: only platform admins post (API or CLI); everyone reads.
    system = "/api/notifications/system"
    refused = api.post(system, json={"title": "Hi", "message": "all"})
    assert_error(refused, 403, "FORBIDDEN")
    granted = run_admin_cli(own_admin, "platform-admin", owner.email.upper())
    assert granted.returncode == 0 and "is a platform admin" in granted.stdout, granted.stderr
    assert api.get("/api/users/me").json()["users"][0]["platformAdmin"] is True
    for body, fields in [
        ({}, ["title", "message"]),
        ({"title": "", "message": "x"}, ["title"]),
        ({"title": "t" * 201, "message": "x"}, ["title"]),
        ({"title": "t", "message": "x", "type": "user"}, ["type"]),
        ({"title": "t", "message": ["x"]}, ["message"]),
    ]:
        assert_invalid(api.post(system, json=body), *fields)
    posted = [api.post(system, json={"title": f"Notice {n}", "message": "m"}) for n in (1, 2)]
    assert [p.status_code for p in posted] == [201, 201]
    first = posted[0].json()["notifications"][0]
    assert first["type"] == "system" and first["pKey"] == "SYSTEM_NOTIFICATION"
    assert first["event"] == "system.announcement"
    cli = run_admin_cli(own_admin, "notify-system", "--title", "Notice 3", "--message", "from CLI")
    assert cli.returncode == 0 and "Posted system notification notif_" in cli.stdout, cli.stderr
    bad_cli = run_admin_cli_in_process(own_admin, "notify-system", "--title", "", "--message", "x")
    assert bad_cli.returncode != 0 and "--title" in bad_cli.stderr
    assert run_admin_cli(own_admin, "platform-admin", "nobody@example.test").returncode != 0

    pages = walk(as_bea, system, limit=2)
    assert [len(page) for page in pages] == [2, 1]
    titles = [n["title"] for page in pages for n in page]
    assert titles == ["Notice 3", "Notice 2", "Notice 1"], "newest first"
    for query, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"unread": "maybe"}, "unread"),
        ({"nextToken": "not-a-token"}, "nextToken"),
        ({"nextToken": "WyJ4IiwgMV0"}, "nextToken"),  # ["x", 1]
        ({"sort": "up"}, "sort"),
    ]:
        assert_invalid(as_bea.get(system, params=query), field)

    items(as_bea.get(f"{system}/{first['notificationId']}"))
    unread = as_bea.get("/api/me/notifications/unread")
    assert unread.status_code == 200, unread.text
    assert unread.json()["unread"] == {"system": 2, "user": 0, "clients": {client_id: 1}}
    assert unread.json()["total"] == 3
    assert as_eve.get("/api/me/notifications/unread").json()["unread"] == {
        "system": 3,
        "user": 0,
        "clients": {eve_client: 0},
    }

    assert_error(as_bea.delete(f"{system}/{first['notificationId']}"), 403, "FORBIDDEN")
    assert api.delete(f"{system}/{first['notificationId']}").status_code == 200
    assert_error(as_bea.get(f"{system}/{first['notificationId']}"), 404, "NOT_FOUND")
    assert_error(api.delete(f"{system}/{joined['notificationId']}"), 404, "NOT_FOUND")
    revoked = run_admin_cli(own_admin, "platform-admin", owner.email, "--revoke")
    assert revoked.returncode == 0 and "no longer" in revoked.stdout
    assert_error(api.post(system, json={"title": "t", "message": "m"}), 403, "FORBIDDEN")


def test_events_dedup_and_queue_to_subscribed_enabled_notifiers(sessions):
    """record_event on the real store: a dedup key writes once, and the caller's
    transaction goes on; deliveries go to enabled notifiers whose patterns match."""
    assert matches("*", "credits.low") and matches("credits.*", "credits.low")
    assert not matches("credits.*", "creditsx.low") and not matches("credits.low", "credits.lo")
    assert {"async.dead_letter", "proxy.pool_low", "ratelimit.reached"} <= EVENTS.keys()
    with sessions() as session:
        user = User(email="events@example.test")
        client = Client(name="Events")
        session.add_all([user, client])
        session.flush()
        notifiers = {
            name: Notifier(
                client_id=client.id,
                name=name,
                kind="email",
                subscribes_to=patterns,
                enabled=enabled,
                recipients=["ops@example.test"],
            )
            for name, patterns, enabled in [
                ("all", ["*"], True),
                ("credits", ["ratelimit.reached", "credits.*"], True),
                ("off", ["*"], False),
                ("limits", ["ratelimit.*"], True),
            ]
        }
        session.add_all(notifiers.values())
        session.commit()

        low = Event(
            name="credits.low",
            title="Credits are low",
            message="m",
            details={"balance": "1"},
            client_id=client.id,
            dedup_key=f"credits.low:{client.id}:2026-11-30",
        )
        first = record_event(session, low)
        assert first is not None and first.type == "client" and first.event == "credits.low"
        assert record_event(session, low) is None, "the same dedup key creates nothing"
        session.add(Client(name="written after the duplicate, in the same transaction"))
        session.commit()
        assert record_event(session, low) is None  # also across transactions
        mine = record_event(session, Event("invite.accepted", "t", "m", {}, user_id=user.id))
        system = record_event(session, Event("system.announcement", "t", "m"))
        session.commit()
        assert (mine.type, mine.user_id, mine.client_id) == ("user", user.id, None)
        assert (system.type, system.user_id, system.client_id) == ("system", None, None)
        with pytest.raises(ValueError):
            record_event(session, Event("no.such_event", "t", "m"))

        deliveries = session.scalars(select(NotifierDelivery)).all()
        by_notifier = {d.notifier_id: d for d in deliveries}
        assert set(by_notifier) == {notifiers["all"].id, notifiers["credits"].id}
        assert len(deliveries) == 2
        payloads = [d.payload for d in deliveries]
        assert payloads[0] == payloads[1] and deliveries[0].event_id == payloads[0]["id"]
        assert payloads[0]["type"] == "credits.low" and payloads[0]["clientId"] == client.id
        assert payloads[0]["data"]["notificationId"] == first.id
        assert payloads[0]["data"]["details"] == {"balance": "1"}
        assert all(d.status == "pending" and d.attempts == 0 for d in deliveries)
        assert session.scalar(select(func.count()).select_from(Client)) == 2

        test_event = Event("notifier.test", "Test", "m", client_id=client.id)
        record_event(session, test_event, to_notifiers={notifiers["off"].id})
        session.commit()
        tested = session.scalars(
            select(NotifierDelivery).where(NotifierDelivery.event == "notifier.test")
        ).all()
        assert [d.notifier_id for d in tested] == [notifiers["off"].id]
        count = session.scalar(select(func.count()).select_from(Notification))
        assert count == 4
