"""Members of a client and their roles. Reading needs membership; changes need `owner`.

Adding a member by email answers the same whether or not an account uses
that email, so the endpoint cannot be used to find out who has an account.
"""

from __future__ import annotations

from sqlalchemy import func, select

from admin.api.common import api_blueprint, load_body
from admin.auth import client_for, current_user
from admin.errors import conflict, not_found
from admin.extensions import db
from admin.http import envelope, message_only
from admin.openapi import doc
from admin.schemas.clients import MemberSchema, NewMemberSchema
from models import Client, Membership, User
from models.enums import Role
from models.events import Event, record_event

bp = api_blueprint("members")


def _member(client: Client, user_id: str) -> Membership:
    membership = db.session.get(Membership, (client.id, user_id))
    if membership is None:
        raise not_found("Member")
    return membership


def _ensure_another_owner(client: Client, leaving: Membership) -> None:
    owners = [m for m in client.memberships if Role.OWNER.value in m.roles and m is not leaving]
    if not owners:
        raise conflict("A client must keep at least one owner; make someone else owner first")


def _roles(values: dict) -> list[str]:
    return sorted(set(values["roles"]), key=lambda r: -Role(r).level)


@bp.get("/clients/<client_id>/members")
@doc("List members", "members", envelope="members", schema=MemberSchema, errors=(401, 404))
def list_members(client_id: str):
    return envelope("members", MemberSchema(many=True).dump(client_for(client_id).memberships))


ADDED = (
    "If an account uses that email, it is now a member with the roles given;"
    " the members list shows who is a member"
)


@bp.post("/clients/<client_id>/members")
@doc(
    "Add the user who has this email (owner). The answer is the same whether or not an"
    " account uses the email (nothing happens if none does); the members list shows the result.",
    "members",
    body=NewMemberSchema,
    envelope="members",
    schema=MemberSchema,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
def add_member(client_id: str):
    client = client_for(client_id, Role.OWNER)
    values = load_body(NewMemberSchema())
    user = db.session.scalar(select(User).where(func.lower(User.email) == values["email"].lower()))
    if user is not None:
        # Already a member: the owner can see that in the members list anyway.
        if db.session.get(Membership, (client.id, user.id)) is not None:
            raise conflict("That user is already a member; change their roles instead")
        roles = _roles(values)
        db.session.add(Membership(client=client, user=user, roles=roles))
        record_event(db.session, added_event(client, user, roles))
        db.session.commit()
    return envelope("members", [], message=ADDED, status=201)


def added_event(client: Client, user: User, roles: list[str]) -> Event:
    """The user notification telling someone an owner added them to a client."""
    adder = current_user()
    return Event(
        name="member.added",
        user_id=user.id,
        title=f"You were added to {client.name} as {roles[0]}",
        message=f"{adder.name or adder.email} added you to {client.name} as {roles[0]}.",
        details={"clientId": client.id, "roles": roles, "addedBy": adder.id},
    )


@bp.put("/clients/<client_id>/members/<user_id>")
@doc(
    "Change a member's roles (owner)",
    "members",
    body=MemberSchema,
    envelope="members",
    schema=MemberSchema,
    errors=(400, 401, 403, 404, 409),
)
def update_member(client_id: str, user_id: str):
    client = client_for(client_id, Role.OWNER)
    membership = _member(client, user_id)
    values = load_body(MemberSchema())
    if Role.OWNER.value not in values["roles"]:
        _ensure_another_owner(client, membership)
    membership.roles = _roles(values)
    db.session.commit()
    return envelope("members", [MemberSchema().dump(membership)])


@bp.delete("/clients/<client_id>/members/<user_id>")
@doc("Remove a member (owner)", "members", errors=(401, 403, 404, 409))
def remove_member(client_id: str, user_id: str):
    client = client_for(client_id, Role.OWNER)
    membership = _member(client, user_id)
    _ensure_another_owner(client, membership)
    client.memberships.remove(membership)
    db.session.commit()
    return message_only("Member removed successfully")
