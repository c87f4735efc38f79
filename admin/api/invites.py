"""The Invites API: owners invite an email into a client; the link's holder joins with it.

The link token is shown once (on create and resend) and stored only as its SHA-256.
Accepting is single-use under concurrency: one conditional UPDATE decides who uses it.
`GET /invites/{token}` and `POST /invites/{token}/signup` need no sign-in (the token
is the credential); accepting as an existing user needs the invite's email.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, request
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from admin.api.common import api_blueprint, load_body, owned
from admin.auth import client_for, current_user
from admin.errors import ApiError, conflict
from admin.extensions import db
from admin.http import envelope, refuse_nul_arguments
from admin.invite_mail import send_invite
from admin.openapi import doc
from admin.schemas.clients import MemberSchema
from admin.schemas.invites import (
    InviteLinkSchema,
    InviteQuerySchema,
    InviteSchema,
    InviteSignupSchema,
    SentInviteSchema,
)
from models import Client, Invite, Membership, User
from models.base import isoformat_z, utcnow
from models.enums import Role
from models.events import Event, record_event
from models.invite import invite_token_hash, new_invite_token

bp = api_blueprint("invites")
links = Blueprint("invite_links", __name__)  # no sign-in: the link's token is the credential
links.before_request(refuse_nul_arguments)

GONE = {
    "accepted": ("INVITE_USED", "This invite has been used already; ask for a new one"),
    "revoked": ("INVITE_REVOKED", "This invite was revoked; ask the client's owner for a new one"),
    "expired": ("INVITE_EXPIRED", "This invite has expired; ask the client's owner to resend it"),
}


def strongest_first(roles: list[str]) -> list[str]:
    return sorted(set(roles), key=lambda role: -Role(role).level)


def settings():
    return current_app.config["PORTCULLIS_SETTINGS"]


def invite_url(token: str) -> str:
    base = settings().public_url or request.host_url
    return f"{base.rstrip('/')}/ui/invites/{token}"


def user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))


def already_member(email: str) -> ApiError:
    return ApiError(409, "ALREADY_MEMBER", f"{email} is already a member of this client")


def issue_link(invite: Invite, client: Client):
    """Give the invite a new token and expiry, e-mail it, and answer it with its link (once)."""
    token = new_invite_token()
    now = utcnow()
    invite.token_hash = invite_token_hash(token)
    invite.expires_at = now + timedelta(days=settings().invite_days)
    invite.last_sent_at = now
    db.session.commit()
    link = invite_url(token)
    inviter = current_user().name or current_user().email
    sending = send_invite(settings(), invite, client.name, inviter, link)
    item = SentInviteSchema().dump(invite) | {"inviteUrl": link, "emailed": sending.emailed}
    return item, sending.message


@bp.post("/clients/<client_id>/invites")
@doc(
    "Invite an email into the client with roles (owner); e-mails the link when SMTP is set up."
    " The link (inviteUrl) is shown only in this answer.",
    "invites",
    body=InviteSchema,
    envelope="invites",
    schema=SentInviteSchema,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
def create_invite(client_id: str):
    client = client_for(client_id, Role.OWNER)
    values = load_body(InviteSchema())
    email = values["email"].strip().lower()
    member = user_by_email(email)
    if member is not None and db.session.get(Membership, (client.id, member.id)) is not None:
        raise already_member(email)
    pending = db.session.scalar(
        select(Invite.id).where(
            Invite.client_id == client.id,
            func.lower(Invite.email) == email,
            Invite.accepted_at.is_(None),
            Invite.revoked_at.is_(None),
            Invite.expires_at > utcnow(),
        )
    )
    if pending is not None:
        raise ApiError(
            409,
            "INVITE_PENDING",
            f"{email} has a pending invite already ({pending}); resend or revoke it",
            {"inviteId": pending},
        )
    invite = Invite(
        client_id=client.id,
        email=email,
        roles=strongest_first(values["roles"]),
        created_by=current_user().id,
        token_hash="",
        expires_at=utcnow(),
    )
    db.session.add(invite)
    item, message = issue_link(invite, client)
    return envelope("invites", [item], message=message, status=201)


@bp.get("/clients/<client_id>/invites")
@doc(
    "List the client's invites, newest first (admin): pending ones, or all with status=all",
    "invites",
    envelope="invites",
    schema=InviteSchema,
    query=InviteQuerySchema().fields,
    errors=(400, 401, 403, 404),
)
def list_invites(client_id: str):
    client = client_for(client_id, Role.ADMIN)
    args = InviteQuerySchema().load(request.args.to_dict())
    query = select(Invite).where(Invite.client_id == client.id)
    if args["status"] == "pending":
        query = query.where(
            Invite.accepted_at.is_(None),
            Invite.revoked_at.is_(None),
            Invite.expires_at > utcnow(),
        )
    invites = db.session.scalars(query.order_by(Invite.created_at.desc(), Invite.id)).all()
    return envelope("invites", InviteSchema(many=True).dump(invites))


@bp.delete("/clients/<client_id>/invites/<invite_id>")
@doc(
    "Revoke an invite (owner): its link stops working at once",
    "invites",
    envelope="invites",
    schema=InviteSchema,
    errors=(401, 403, 404, 409),
)
def revoke_invite(client_id: str, invite_id: str):
    client_for(client_id, Role.OWNER)
    invite = owned(Invite, client_id, invite_id, "Invite")
    if invite.accepted_at is not None:
        raise conflict("This invite has been accepted already; remove the member instead")
    if invite.revoked_at is None:
        invite.revoked_at = utcnow()
        db.session.commit()
    return envelope("invites", [InviteSchema().dump(invite)], message="Invite revoked")


@bp.post("/clients/<client_id>/invites/<invite_id>/resend")
@doc(
    "Resend an invite (owner): a new link (the old one stops working) and a new expiry."
    " The link (inviteUrl) is shown only in this answer.",
    "invites",
    envelope="invites",
    schema=SentInviteSchema,
    errors=(401, 403, 404, 409),
)
def resend_invite(client_id: str, invite_id: str):
    client = client_for(client_id, Role.OWNER)
    invite = owned(Invite, client_id, invite_id, "Invite")
    if invite.accepted_at is not None:
        raise conflict("This invite has been accepted already")
    if invite.revoked_at is not None:
        raise conflict("This invite was revoked; invite the email again instead")
    item, message = issue_link(invite, client)
    return envelope("invites", [item], message=message)


def invite_for(token: str) -> Invite:
    """The invite of a link token; 404 INVITE_NOT_FOUND if unknown (or replaced by a resend)."""
    invite = db.session.scalar(select(Invite).where(Invite.token_hash == invite_token_hash(token)))
    if invite is None:
        raise ApiError(404, "INVITE_NOT_FOUND", "This invite link is not known")
    return invite


def refuse_unless_pending(invite: Invite) -> None:
    status = invite.status
    if status != "pending":
        code, message = GONE[status]
        raise ApiError(410, code, message)


def use(invite: Invite, user: User) -> Membership:
    """Mark the invite used by `user` (exactly one caller wins) and make them a member.

    In the caller's transaction; 410 when another use, a revoke or the expiry came first.
    """
    now = utcnow()
    won = db.session.execute(
        update(Invite)
        .where(
            Invite.id == invite.id,
            Invite.accepted_at.is_(None),
            Invite.revoked_at.is_(None),
            Invite.expires_at > now,
        )
        .values(accepted_at=now, accepted_by=user.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        db.session.rollback()
        db.session.refresh(invite)
        refuse_unless_pending(invite)
        raise ApiError(410, *GONE["accepted"])
    client = db.session.get(Client, invite.client_id)
    membership = Membership(client_id=client.id, user_id=user.id, roles=list(invite.roles))
    db.session.add(membership)
    who = user.name or user.email
    role = invite.roles[0]
    details = {"inviteId": invite.id, "userId": user.id, "email": user.email, "roles": invite.roles}
    record_event(
        db.session,
        Event(
            name="invite.accepted",
            client_id=client.id,
            title=f"{who} joined {client.name}",
            message=f"{who} ({user.email}) accepted an invite and joined {client.name} as {role}.",
            details=details,
        ),
    )
    record_event(
        db.session,
        Event(
            name="invite.accepted",
            user_id=user.id,
            title=f"You joined {client.name} as {role}",
            message=f"You accepted an invite and joined {client.name} as {role}.",
            details=details | {"clientId": client.id},
        ),
    )
    return membership


def joined(membership: Membership, message: str, status: int = 200):
    return envelope(
        "members",
        [MemberSchema().dump(membership)],
        clientId=membership.client_id,
        message=message,
        status=status,
    )


@links.get("/invites/<token>")
@doc(
    "What an invite link is for (no sign-in: the link is the credential)",
    "invites",
    schema=InviteLinkSchema,
    auth=False,
)
def show_invite(token: str):
    invite = invite_for(token)
    client = db.session.get(Client, invite.client_id)
    return {
        "clientName": client.name,
        "email": invite.email,
        "roles": invite.roles,
        "status": invite.status,
        "expiresAt": isoformat_z(invite.expires_at),
        "accountExists": user_by_email(invite.email) is not None,
        "message": "Success",
    }


@bp.post("/invites/<token>/accept")
@doc(
    "Accept an invite as the signed-in user (whose email must be the invite's): join the client",
    "invites",
    envelope="members",
    schema=MemberSchema,
    errors=(401, 403, 404, 409, 410),
)
def accept_invite(token: str):
    invite = invite_for(token)
    refuse_unless_pending(invite)
    user = current_user()
    if user.email.lower() != invite.email.lower():
        raise ApiError(
            403,
            "INVITE_FOR_ANOTHER_EMAIL",
            f"This invite is for {invite.email}; you are signed in as {user.email}",
        )
    if db.session.get(Membership, (invite.client_id, user.id)) is not None:
        db.session.refresh(invite)  # joined with this very invite meanwhile: say it is used
        refuse_unless_pending(invite)
        raise already_member(user.email)
    membership = use(invite, user)
    try:
        db.session.commit()
    except IntegrityError:  # an owner added them through the members API meanwhile
        db.session.rollback()
        raise already_member(user.email) from None
    return joined(membership, "Invite accepted; you are now a member")


@links.post("/invites/<token>/signup")
@doc(
    "Create an account with the invite's email and a password, and join the client"
    " (no sign-in: the link is the credential)",
    "invites",
    body=InviteSignupSchema,
    envelope="members",
    schema=MemberSchema,
    status=201,
    auth=False,
)
def signup_with_invite(token: str):
    values = load_body(InviteSignupSchema())  # a malformed body is named whatever the link
    invite = invite_for(token)
    refuse_unless_pending(invite)
    exists = ApiError(
        409,
        "ACCOUNT_EXISTS",
        f"An account with {invite.email} exists already: sign in to accept the invite",
    )
    if user_by_email(invite.email) is not None:
        raise exists
    user = User(email=invite.email, name=values["name"].strip())
    user.set_password(values["password"])
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # someone took the email meanwhile: maybe this very invite
        db.session.rollback()
        db.session.refresh(invite)
        refuse_unless_pending(invite)
        raise exists from None
    membership = use(invite, user)
    db.session.commit()
    message = "Account created; you are now a member. Sign in with your password"
    return joined(membership, message, status=201)
