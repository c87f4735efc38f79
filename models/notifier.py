"""Notifiers (a client's outbound channels for events) and their deliveries.

The data plane never reads notifiers, so changing one does not bump the config version.
"""

from __future__ import annotations

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, TimestampMixin
from models.ids import new_id

NOTIFIER_KINDS = ("webhook", "email")
DELIVERY_STATUSES = ("pending", "delivering", "delivered", "failed")


class Notifier(TimestampMixin, Base):
    """A webhook or email channel subscribed to event patterns."""

    __tablename__ = "notifiers"

    id: Mapped[str] = mapped_column(
        String(32), primary_key=True, default=lambda: new_id("notifier")
    )
    # None: a platform notifier (platform admins'), for system and user events such as the
    # pool's (`proxy.pool_low`, `credits.*`, `lease.expired`).
    client_id: Mapped[str | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    subscribes_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    url: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The webhook signing secret, sealed with the KeyRing (AAD "{id}:signing"); None for email.
    secret_key_id: Mapped[str | None] = mapped_column(String(64))
    secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)


class NotifierDelivery(Base):
    """One event to deliver through one notifier, with its retry state."""

    __tablename__ = "notifier_deliveries"
    __table_args__ = (Index("ix_notifier_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(
        String(32), primary_key=True, default=lambda: new_id("delivery")
    )
    notifier_id: Mapped[str] = mapped_column(
        ForeignKey("notifiers.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(32))  # evt_..., the webhook-id on every retry
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)  # epoch s
    deadline_at: Mapped[float] = mapped_column(Float)
    claimed_until: Mapped[float | None] = mapped_column(Float)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
