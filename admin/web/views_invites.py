"""Invites: the owner's invite form and pending list on the Members page, and the page a
person lands on from an invite link (signed in or not, with or without an account).

The link's token is shown to the owner once (rendered, never flashed: a flash would keep
it in the cookie) and is in the invite page's URL, so that page sends no Referer.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import (
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import func, select

from admin.extensions import db
from admin.web import bp
from admin.web.confirm import confirm_then_delete
from admin.web.core_api import Answer, call, call_public, get
from admin.web.forms import ConfirmForm, MemberForm
from admin.web.forms_team import InviteForm, SignupForm
from admin.web.session import begin_session, live_session, load_client, require, signed_in
from models import User

INVITE_PREFIX = "inv"
REFUSALS = {
    "accepted": "This invite was already used.",
    "revoked": "This invite was revoked.",
    "expired": "This invite has expired.",
}


@bp.app_template_global()
def invites_panel(client_id: str, form: InviteForm | None = None) -> dict:
    """What the Members page shows an owner about invites: the form and the pending ones."""
    answer = get(f"/clients/{client_id}/invites", status="pending")
    return {
        "form": form or InviteForm(prefix=INVITE_PREFIX, formdata=None),
        "invites": answer.items("invites") if answer.ok else [],
    }


def _members_page(client_id: str, form: InviteForm | None = None, new_invite=None):
    """The Members page (as `views_clients.members` renders it) with the invite part."""
    people = get(f"/clients/{client_id}/members").items("members")
    return render_template(
        "web/members.html",
        form=MemberForm(formdata=None),
        people=people,
        panel=invites_panel(client_id, form),
        new_invite=new_invite,
    )


@bp.post("/c/<client_id>/invites")
@signed_in
def new_invite(client_id: str):
    """Invite an email with a role; the link is shown on the page that answers, once."""
    load_client(client_id)
    require("owner")
    form = InviteForm(prefix=INVITE_PREFIX)
    if form.submit_ok():
        body = {"email": form.email.data.strip(), "roles": [form.role.data]}
        answer = call("POST", f"/clients/{client_id}/invites", body)
        if answer.ok:
            return _members_page(client_id, new_invite=_shown_once(answer))
        form.show_errors(answer.field_errors, answer.message)
    return _members_page(client_id, form), 400


@bp.post("/c/<client_id>/invites/<invite_id>/resend")
@signed_in
def resend_invite(client_id: str, invite_id: str):
    """A new link (the old one stops working), e-mailed again, shown once."""
    load_client(client_id)
    require("owner")
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("web.members", client_id=client_id))
    answer = call("POST", f"/clients/{client_id}/invites/{invite_id}/resend")
    if not answer.ok:
        form = InviteForm(prefix=INVITE_PREFIX, formdata=None)
        form.form_errors = [answer.message or "The invite could not be resent."]
        return _members_page(client_id, form), answer.status
    return _members_page(client_id, new_invite=_shown_once(answer, resent=True))


def _shown_once(answer: Answer, resent: bool = False) -> dict:
    invite = answer.item("invites")
    return {**invite, "resent": resent, "mailMessage": answer.message}


@bp.route("/c/<client_id>/invites/<invite_id>/revoke", methods=["GET", "POST"])
@signed_in
def revoke_invite(client_id: str, invite_id: str):
    load_client(client_id)
    require("owner")
    return confirm_then_delete(
        f"/clients/{client_id}/invites/{invite_id}",
        back=url_for("web.members", client_id=client_id),
        question="Revoke this invite?",
        consequence="Its link stops working at once. You can invite the same email again.",
        action="Revoke invite",
        done="Invite revoked.",
    )


def _no_referrer(body, status: int = 200):
    response = make_response(body, status)
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in this page's URL
    response.headers["Cache-Control"] = "no-store"
    return response


def _landing(answer: Answer) -> str:
    """The page of the client just joined (the answer names it)."""
    client_id = answer.body.get("clientId") if isinstance(answer.body, dict) else None
    if not client_id:
        return url_for("web.home")
    return url_for("web.client", client_id=client_id)


@bp.route("/invites/<token>", methods=["GET", "POST"])
def invite(token: str):
    """The page an invite link opens: join, create an account, or a clear refusal."""
    g.web_session = live_session()
    g.me = get("/users/me").item("users") if g.web_session else None
    quoted = quote(token, safe="")  # the token came from the URL: it stays one path segment
    found = call_public("GET", f"/invites/{quoted}")
    if not found.ok:
        return _refusal(found.status, found.message)
    invite = found.body
    if invite.get("status") != "pending":
        return _refusal(410, REFUSALS.get(invite.get("status"), ""), invite)
    here = url_for("web.invite", token=token)
    form = SignupForm(prefix="su")
    error = ""
    if g.me is not None:
        if request.method == "POST" and ConfirmForm().validate_on_submit():
            answer = call("POST", f"/invites/{quoted}/accept")
            if answer.ok:
                return redirect(_landing(answer))
            if answer.status in (404, 410):
                return _refusal(answer.status, answer.message, invite)
            error = answer.message
    elif not invite.get("accountExists") and form.submit_ok():
        body = {"name": form.name.data.strip(), "password": form.password.data}
        answer = call_public("POST", f"/invites/{quoted}/signup", body)
        if answer.ok:
            user = db.session.scalar(
                select(User).where(func.lower(User.email) == invite["email"].lower())
            )
            if user is not None:
                begin_session(user)
                return redirect(_landing(answer))
            return redirect(url_for("web.login", next=here))
        if answer.status in (404, 410):
            return _refusal(answer.status, answer.message, invite)
        form.show_errors(answer.field_errors, answer.message)
    mine = g.me is not None and g.me["email"].lower() == invite["email"].lower()
    return _no_referrer(
        render_template(
            "web/invite.html",
            invite=invite,
            form=form,
            error=error,
            mine=mine,
            sign_in=url_for("web.login", next=here),
        ),
        400 if error or form.errors else 200,
    )


def _refusal(status: int, message: str, invite: dict | None = None):
    """Unknown (404) or no longer usable (410): what happened and what to do."""
    if status != 410:  # 404, or a token the API cannot even read (400): not a link it gave
        status = 404
        message = "This invite link is not known. Check that you copied all of it."
    return _no_referrer(
        render_template("web/invite_refused.html", status=status, message=message, invite=invite),
        status,
    )
