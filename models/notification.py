"""Notifications of three kinds (system, user, client) and who has read them.

Read state is per user: a `NotificationRead` row says that user has read it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.ids import new_id
from models.upsert import INSERTS

NOTIFICATION_TYPES = ("system", "user", "client")
SYSTEM_PKEY = "SYSTEM_NOTIFICATION"


class Notification(Base):
    """A notification: for everyone (system), one user (user), or a client's members (client)."""

    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(
        String(32), primary_key=True, default=lambda: new_id("notification")
    )
    type: Mapped[str] = mapped_column(String(16), default="client")
    client_id: Mapped[str | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str | None] = mapped_column(String(64))
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def p_key(self) -> str:
        """The partition key the hosted API shows: SYSTEM_NOTIFICATION, the user or client id."""
        if self.type == "system":
            return SYSTEM_PKEY
        return (self.user_id if self.type == "user" else self.client_id) or ""


class NotificationRead(Base):
    """That a user has read a notification (fetched it once)."""

    __tablename__ = "notification_reads"

    notification_id: Mapped[str] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def mark_read(session: Session, notification_id: str, user_id: str) -> None:
    """Record that `user_id` has read the notification (once; a second call changes nothing)."""
    insert = INSERTS[session.get_bind().dialect.name]
    session.execute(
        insert(NotificationRead.__table__)
        .values(notification_id=notification_id, user_id=user_id, read_at=utcnow())
        .on_conflict_do_nothing(index_elements=["notification_id", "user_id"])
    )
