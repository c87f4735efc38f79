"""One e-mail attempt: an event as a plain-text and HTML message to the notifier's recipients."""

from __future__ import annotations

import json
from html import escape

from admin.mailer import MailError, send_mail
from admin.notify.attempt import Attempt
from models.settings import Settings

SUBJECT_PREFIX = "[Portcullis] "


def _details_lines(details: dict) -> list[tuple[str, str]]:
    return [
        (str(key), value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in sorted(details.items())
    ]


def render(payload: dict) -> tuple[str, str, str]:
    """(subject, text, html) for an event payload (models/events.py's shape)."""
    data = payload.get("data") or {}
    title = str(data.get("title") or payload.get("type") or "Notification")
    message = str(data.get("message") or "")
    details = _details_lines(data.get("details") or {})
    facts = [("Event", str(payload.get("type"))), ("Time", str(payload.get("timestamp")))]
    if payload.get("clientId"):
        facts.append(("Client", str(payload["clientId"])))
    text = "\n".join([title, "", message, "", *(f"{k}: {v}" for k, v in facts + details), ""])
    rows = "".join(
        f"<tr><th align='left'>{escape(k)}</th><td>{escape(v)}</td></tr>"
        for k, v in facts + details
    )
    html = (
        "<!doctype html><html><body>"
        f"<h2>{escape(title)}</h2><p>{escape(message)}</p>"
        f"<table cellpadding='4'>{rows}</table>"
        "<p style='color:#666'>Sent by a Portcullis notifier.</p></body></html>"
    )
    return SUBJECT_PREFIX + title.replace("\r", " ").replace("\n", " "), text, html


def send_email(settings: Settings, recipients: list[str], payload: dict) -> Attempt:
    """Hand the message to the SMTP server; a refusal or no server configured is a failure."""
    subject, text, html = render(payload)
    try:
        send_mail(settings, recipients, subject, text, html)
    except MailError as exc:
        return Attempt.failed(str(exc))
    return Attempt(True)
