"""Invites: a single-use, expiring, revocable link that lets an email join a client."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.ids import new_id

INVITE_TOKEN_PREFIX = "pci_"
INVITE_STATUSES = ("pending", "accepted", "revoked", "expired")
TOKEN_IN_TEXT = re.compile(re.escape(INVITE_TOKEN_PREFIX) + r"[A-Za-z0-9_-]+")


def new_invite_token() -> str:
    """A new link token; only its SHA-256 is stored."""
    return INVITE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def invite_token_hash(token: str) -> str:
    """The stored form of a link token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def redact_invite_tokens(text: str) -> str:
    """`text` (e.g. a request path for the access log) with invite link tokens cut off."""
    return TOKEN_IN_TEXT.sub(INVITE_TOKEN_PREFIX + "…", text)


class Invite(Base):
    """An invitation of an email address into a client with some roles."""

    __tablename__ = "invites"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("invite"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    roles: Mapped[list[str]] = mapped_column(JSON)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def status_at(self, now: datetime) -> str:
        """pending, accepted, revoked or expired (in that order of precedence after use)."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "pending"

    @property
    def status(self) -> str:
        return self.status_at(utcnow())
