"""The invite e-mail: plain text and HTML (every value escaped), sent over the operator's SMTP."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from admin.mailer import MailError, mail_configured, send_mail
from models.base import isoformat_z
from models.invite import Invite
from models.settings import Settings

NOT_CONFIGURED = (
    "No e-mail was sent: SMTP is not configured (PORTCULLIS_SMTP_URL). "
    "Give the link to {email} yourself; it is shown only this once."
)
NOT_SENT = (
    "The invite stands, but its e-mail could not be sent ({reason}). "
    "Give the link to {email} yourself; it is shown only this once."
)
SENT = "Invite e-mailed to {email}. The link is also shown here, only this once."


@dataclass(frozen=True)
class Sending:
    """Whether the e-mail went out, and a message for the owner saying so."""

    emailed: bool
    message: str


def subject(client_name: str) -> str:
    return f"You are invited to {client_name} on Portcullis"


def bodies(invite: Invite, client_name: str, inviter: str, link: str) -> tuple[str, str]:
    """The text and HTML bodies of an invite e-mail."""
    role = invite.roles[0]
    expires = isoformat_z(invite.expires_at)
    text = (
        f"{inviter} invited you to join {client_name} on Portcullis as {role}.\n\n"
        f"Accept the invite: {link}\n\n"
        f"The link works once and expires at {expires}. "
        "If you did not expect this invite, ignore this e-mail.\n"
    )
    html = (
        "<!doctype html><html><body>"
        f"<p>{escape(inviter)} invited you to join <strong>{escape(client_name)}</strong> "
        f"on Portcullis as <strong>{escape(role)}</strong>.</p>"
        f'<p><a href="{escape(link, quote=True)}">Accept the invite</a></p>'
        f"<p>The link works once and expires at {escape(expires or '')}. "
        "If you did not expect this invite, ignore this e-mail.</p>"
        "</body></html>"
    )
    return text, html


def send_invite(
    settings: Settings, invite: Invite, client_name: str, inviter: str, link: str
) -> Sending:
    """E-mail the invite when SMTP is configured; never raises (the invite stands either way)."""
    if not mail_configured(settings):
        return Sending(False, NOT_CONFIGURED.format(email=invite.email))
    text, html = bodies(invite, client_name, inviter, link)
    try:
        send_mail(settings, [invite.email], subject(client_name), text, html)
    except (MailError, ValueError) as exc:  # ValueError: a header the message cannot carry
        return Sending(False, NOT_SENT.format(reason=exc, email=invite.email))
    return Sending(True, SENT.format(email=invite.email))
