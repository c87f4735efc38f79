"""Invites through the Core API: e-mailed links that work once, expire, and can be revoked.

One admin of this module's own sends mail to a real SMTP server (aiosmtpd); the
session's admin has no SMTP, so its invites are not e-mailed (and say so).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tests.proxy_support import free_port
from tests.smtp_support import SmtpServer, text_of
from tests.support import (
    AdminServer,
    Api,
    add_member,
    assert_error,
    assert_invalid,
    new_client,
    start_admin,
)
from tests.team_support import set_invite_expiry, token_of, user_on

LINK = re.compile(r"https?://\S+/ui/invites/pci_[A-Za-z0-9_-]+")
CONCURRENT = 6


@pytest.fixture(scope="module")
def smtp() -> SmtpServer:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def mailing_admin(tmp_path_factory, smtp) -> AdminServer:
    server = start_admin(tmp_path_factory.mktemp("invites-admin"), PORTCULLIS_SMTP_URL=smtp.url)
    yield server
    server.stop()


def invite(api: Api, client_id: str, email: str, roles=("user",)) -> dict:
    response = api.post(
        f"/api/clients/{client_id}/invites", json={"email": email, "roles": list(roles)}
    )
    assert response.status_code == 201, response.text
    [item] = response.json()["invites"]
    return item | {"message": response.json()["message"]}


def test_an_emailed_invite_link_creates_the_account_and_joins_once(mailing_admin, smtp):
    owner = user_on(mailing_admin, "Olive Owner")
    api = Api(mailing_admin.base_url, owner.token)
    public = Api(mailing_admin.base_url, None)
    client_id = new_client(api, 'R&D <Team> "x"')
    email = "New.Person@Example.test"
    sent = invite(api, client_id, email, roles=["user", "admin"])
    assert sent["emailed"] is True and sent["status"] == "pending"
    assert sent["email"] == email.lower() and sent["roles"] == ["admin", "user"]
    assert sent["inviteId"].startswith("inv_")

    message = smtp.mailbox.to(email)
    assert message["Subject"] == 'You are invited to R&D <Team> "x" on Portcullis'
    plain, html = text_of(message, "plain"), text_of(message, "html")
    assert LINK.findall(plain) == [sent["inviteUrl"]]
    assert "Olive Owner" in plain and "as admin" in plain
    assert "R&amp;D &lt;Team&gt; &quot;x&quot;" in html and "<Team>" not in html
    assert f'href="{sent["inviteUrl"]}"' in html
    token = token_of(sent["inviteUrl"])

    listed = api.get(f"/api/clients/{client_id}/invites").json()["invites"]
    assert [i["inviteId"] for i in listed] == [sent["inviteId"]]
    assert "inviteUrl" not in listed[0] and token not in str(listed)

    shown = public.get(f"/api/invites/{token}")
    assert shown.status_code == 200, shown.text
    assert {k: shown.json()[k] for k in ("clientName", "email", "status", "accountExists")} == {
        "clientName": 'R&D <Team> "x"',
        "email": email.lower(),
        "status": "pending",
        "accountExists": False,
    }

    signup = f"/api/invites/{token}/signup"
    assert_invalid(public.post(signup, json={}), "name", "password")
    assert_invalid(public.post(signup, json={"name": "Nia", "password": "short"}), "password")
    assert_invalid(
        public.post(signup, json={"name": "Nia", "password": "long enough pw", "email": "x@y.z"}),
        "email",
    )
    # The same link used by several people at once: exactly one account joins.
    body = {"name": "Nia New", "password": "a long enough password"}
    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(lambda _: public.post(signup, json=body), range(CONCURRENT)))
    assert sorted(a.status_code for a in answers) == [201] + [410] * (CONCURRENT - 1), [
        a.text for a in answers
    ]
    for loser in (a for a in answers if a.status_code == 410):
        assert_error(loser, 410, "INVITE_USED")
    [won] = [a.json() for a in answers if a.status_code == 201]
    assert won["clientId"] == client_id and won["members"][0]["roles"] == ["admin", "user"]

    members = api.get(f"/api/clients/{client_id}/members").json()["members"]
    [joined] = [m for m in members if m["email"] == email.lower()]
    assert joined["roles"] == ["admin", "user"] and joined["name"] == "Nia New"
    assert public.get(f"/api/invites/{token}").json()["status"] == "accepted"
    assert_error(public.post(signup, json=body), 410, "INVITE_USED")
    notices = api.get(f"/api/clients/{client_id}/notifications").json()["notifications"]
    [accepted] = [n for n in notices if n["event"] == "invite.accepted"]
    assert "Nia New" in accepted["title"] and accepted["details"]["userId"] == joined["userId"]
    assert "/api/invites/pci_…/signup" in mailing_admin.log_text()
    assert token not in mailing_admin.log_text(), "link tokens stay out of the access log"


def test_invites_refuse_reuse_revoked_and_expired_links_and_bad_input(
    admin_server, api, owner, make_user, stranger
):
    """On the session's admin (no SMTP): the link is shown, not e-mailed."""
    public = Api(admin_server.base_url, None)
    client_id = new_client(api, "Invitations")
    base = f"/api/clients/{client_id}/invites"
    invitee, other = make_user(name="Ivy Invitee"), make_user(name="Otto Other")
    helper = make_user(name="Hal Helper")
    add_member(api, client_id, helper, "admin")

    bad = [
        ({}, ["email", "roles"]),
        ({"email": "not-an-email", "roles": ["user"]}, ["email"]),
        ({"email": "a@example.test", "roles": []}, ["roles"]),
        ({"email": "a@example.test", "roles": ["king"]}, ["roles"]),
        ({"email": "a@example.test", "roles": ["user"], "token": "x"}, ["token"]),
        ({"email": "a" * 320 + "@example.test", "roles": ["user"]}, ["email"]),
    ]
    for body, fields in bad:
        assert_invalid(api.post(base, json=body), *fields)
    assert_invalid(api.get(base, params={"status": "gone"}), "status")

    sent = invite(api, client_id, invitee.email.upper())
    assert sent["emailed"] is False and "PORTCULLIS_SMTP_URL" in sent["message"]
    assert_error(
        api.post(base, json={"email": invitee.email, "roles": ["admin"]}), 409, "INVITE_PENDING"
    )
    already = assert_error(
        api.post(base, json={"email": owner.email, "roles": ["user"]}), 409, "ALREADY_MEMBER"
    )
    assert owner.email in already["message"]

    # Who may do what: owners invite, admins list, others see no such client.
    as_helper, as_stranger = api.as_user(helper), api.as_user(stranger)
    assert_error(
        as_helper.post(base, json={"email": "b@x.test", "roles": ["user"]}), 403, "FORBIDDEN"
    )
    assert as_helper.get(base).status_code == 200
    assert_error(as_helper.delete(f"{base}/{sent['inviteId']}"), 403, "FORBIDDEN")
    assert_error(as_stranger.get(base), 404, "NOT_FOUND")
    assert_error(as_stranger.delete(f"{base}/{sent['inviteId']}"), 404, "NOT_FOUND")
    elsewhere = new_client(as_stranger, "Elsewhere")
    assert_error(
        as_stranger.delete(f"/api/clients/{elsewhere}/invites/{sent['inviteId']}"), 404, "NOT_FOUND"
    )

    token = token_of(sent["inviteUrl"])
    assert public.get(f"/api/invites/{token}").json()["accountExists"] is True
    assert_error(public.post(f"/api/invites/{token}/accept"), 401, "UNAUTHORIZED")
    assert_error(
        api.as_user(other).post(f"/api/invites/{token}/accept"), 403, "INVITE_FOR_ANOTHER_EMAIL"
    )
    assert_error(
        public.post(f"/api/invites/{token}/signup", json={"name": "X", "password": "0123456789ab"}),
        409,
        "ACCOUNT_EXISTS",
    )
    assert_error(public.get("/api/invites/pci_unknown"), 404, "INVITE_NOT_FOUND")

    # Accepting at once from several requests: one joins, the others find it used.
    as_invitee = api.as_user(invitee)
    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(
            pool.map(lambda _: as_invitee.post(f"/api/invites/{token}/accept"), range(CONCURRENT))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 200 and statuses[1:] == [410] * (CONCURRENT - 1), statuses
    assert_error(as_invitee.post(f"/api/invites/{token}/accept"), 410, "INVITE_USED")
    mine = as_invitee.get(f"/api/users/{invitee.id}/notifications").json()["notifications"]
    assert [n["title"] for n in mine if n["event"] == "invite.accepted"] == [
        "You joined Invitations as user"
    ]
    assert_error(api.delete(f"{base}/{sent['inviteId']}"), 409, "CONFLICT")

    # Revoked: the link is refused and says why; it cannot be resent.
    revoked = invite(api, client_id, other.email)
    gone = api.delete(f"{base}/{revoked['inviteId']}")
    assert gone.status_code == 200 and gone.json()["invites"][0]["status"] == "revoked"
    revoked_token = token_of(revoked["inviteUrl"])
    assert public.get(f"/api/invites/{revoked_token}").json()["status"] == "revoked"
    assert_error(
        api.as_user(other).post(f"/api/invites/{revoked_token}/accept"), 410, "INVITE_REVOKED"
    )
    assert_error(api.post(f"{base}/{revoked['inviteId']}/resend"), 409, "CONFLICT")

    # Expired: refused; not pending any more; a resend gives a new link, the old one dies.
    expiring = invite(api, client_id, other.email)
    set_invite_expiry(admin_server, expiring["inviteId"], datetime.now(UTC) - timedelta(seconds=1))
    old_token = token_of(expiring["inviteUrl"])
    assert_error(api.as_user(other).post(f"/api/invites/{old_token}/accept"), 410, "INVITE_EXPIRED")
    assert_error(
        public.post(
            f"/api/invites/{old_token}/signup", json={"name": "O", "password": "0123456789ab"}
        ),
        410,
        "INVITE_EXPIRED",
    )
    pending = api.get(base).json()["invites"]
    assert expiring["inviteId"] not in [i["inviteId"] for i in pending]
    everything = {
        i["inviteId"]: i["status"]
        for i in api.get(base, params={"status": "all"}).json()["invites"]
    }
    assert everything == {
        sent["inviteId"]: "accepted",
        revoked["inviteId"]: "revoked",
        expiring["inviteId"]: "expired",
    }
    resent = api.post(f"{base}/{expiring['inviteId']}/resend")
    assert resent.status_code == 200, resent.text
    fresh = resent.json()["invites"][0]
    assert fresh["status"] == "pending" and fresh["inviteUrl"] != expiring["inviteUrl"]
    assert_error(public.get(f"/api/invites/{old_token}"), 404, "INVITE_NOT_FOUND")
    accepted = api.as_user(other).post(f"/api/invites/{token_of(fresh['inviteUrl'])}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["clientId"] == client_id


def test_an_smtp_server_that_refuses_leaves_the_invite_standing(tmp_path):
    """A configured but unreachable SMTP server: not e-mailed, said why, the link still works."""
    server = start_admin(
        tmp_path / "no-mail", PORTCULLIS_SMTP_URL=f"smtp://127.0.0.1:{free_port()}"
    )
    try:
        owner = user_on(server, "Una Unlucky")
        api = Api(server.base_url, owner.token)
        client_id = new_client(api, "Unmailed")
        sent = invite(api, client_id, "someone@example.test")
        assert sent["emailed"] is False
        assert "could not be sent" in sent["message"] and "yourself" in sent["message"]
        shown = Api(server.base_url, None).get(f"/api/invites/{token_of(sent['inviteUrl'])}")
        assert shown.json()["status"] == "pending"
        listed = api.get(f"/api/clients/{client_id}/invites").json()["invites"]
        assert [i["inviteId"] for i in listed] == [sent["inviteId"]]
    finally:
        server.stop()
