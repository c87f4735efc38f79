"""Outbound e-mail over SMTP (`PORTCULLIS_SMTP_URL`): invites and email notifiers.

`smtp://[user:password@]host[:port][?starttls=1]` speaks plain SMTP (port 25),
upgraded with STARTTLS when asked; `smtps://...` speaks TLS from the start
(port 465). The server is the operator's, so it is not put through the SSRF
guard that user-supplied addresses go through.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from models.settings import Settings

TIMEOUT_S = 10
TRUE_WORDS = ("1", "true", "yes")


class MailError(Exception):
    """Mail could not be handed to the SMTP server; the message says why, without secrets."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: bool  # TLS from the first byte (smtps)
    starttls: bool
    username: str | None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """The server named by `url`; ValueError (naming no password) when it is malformed."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("PORTCULLIS_SMTP_URL must look like smtp://host:port or smtps://...")
        tls = parts.scheme == "smtps"
        query = parse_qs(parts.query)
        try:
            port = parts.port or (465 if tls else 25)
        except ValueError as exc:
            raise ValueError("PORTCULLIS_SMTP_URL has an invalid port") from exc
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            starttls=not tls and query.get("starttls", [""])[0].lower() in TRUE_WORDS,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def mail_configured(settings: Settings) -> bool:
    return settings.smtp_url is not None


def build_message(
    settings: Settings, to: list[str], subject: str, text: str, html: str | None = None
) -> EmailMessage:
    """A plain-text message, with an HTML alternative when `html` is given."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def send_mail(
    settings: Settings, to: list[str], subject: str, text: str, html: str | None = None
) -> None:
    """Hand one message to the configured SMTP server; MailError when that fails.

    Blocking (up to about TIMEOUT_S per step): call it from a request thread or
    a background job, never from the data plane's event loop.
    """
    if settings.smtp_url is None:
        raise MailError("No SMTP server is configured (PORTCULLIS_SMTP_URL)")
    server = SmtpServer.parse(settings.smtp_url)
    message = build_message(settings, to, subject, text, html)
    context = ssl.create_default_context()
    try:
        if server.tls:
            connection = smtplib.SMTP_SSL(
                server.host, server.port, timeout=TIMEOUT_S, context=context
            )
        else:
            connection = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_S)
        with connection:
            if server.starttls:
                connection.starttls(context=context)
            if server.username:
                connection.login(server.username, server.password or "")
            connection.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"The SMTP server did not take the message: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
    return type(exc).__name__ if not str(exc) else str(exc)
