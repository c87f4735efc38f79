"""Clients (organisations) and the memberships that give users roles in them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TimestampMixin, UTCDateTime, utcnow
from models.config_version import ConfigEntity
from models.enums import Role
from models.ids import new_id

if TYPE_CHECKING:
    from models.credential import Credential
    from models.proxy import Proxy
    from models.rule import Rule
    from models.target import Target
    from models.user import User


class Client(ConfigEntity, TimestampMixin, Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("client"))
    name: Mapped[str] = mapped_column(String(200))
    # {"limits": {"requestsPerMinute": int, "requestsPerDay": int}}; copied into new proxies.
    configuration: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="client",
        cascade="all, delete-orphan",
        order_by="Membership.created_at",
    )
    # Children are deleted with the client; proxies before what they reference.
    proxies: Mapped[list[Proxy]] = relationship(cascade="all, delete-orphan")
    rules: Mapped[list[Rule]] = relationship(cascade="all, delete-orphan")
    credentials: Mapped[list[Credential]] = relationship(cascade="all, delete-orphan")
    targets: Mapped[list[Target]] = relationship(cascade="all, delete-orphan")

    @property
    def limits(self) -> dict:
        return dict((self.configuration or {}).get("limits") or {})


class Membership(Base):
    """A user's roles in a client."""

    __tablename__ = "memberships"

    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    roles: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    client: Mapped[Client] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship()

    @property
    def level(self) -> int:
        """The privilege level of the strongest role held."""
        return max((Role(r).level for r in self.roles), default=0)

    def has(self, role: Role) -> bool:
        return self.level >= role.level
