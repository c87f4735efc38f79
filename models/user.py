"""People who use the Core API, and their `u-` tokens."""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from models.base import Base, TimestampMixin, UTCDateTime, utcnow
from models.ids import new_id


@functools.cache
def dummy_hash() -> str:
    """Checked against when a user has no password, so the answer takes as long either way.

    Made on first use, not at import: hashing costs ~75 ms of CPU, which every admin,
    data-plane and CLI process would otherwise pay at start.
    """
    return generate_password_hash("no password is set for this user")


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("user"))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # None: tokens only
    # May post system notifications (CLI `platform-admin EMAIL`).
    platform_admin: Mapped[bool] = mapped_column(default=False, server_default=false())

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return password_matches(self, password)

    tokens: Mapped[list[UserToken]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        order_by="UserToken.created_at",
    )


class UserToken(Base):
    """A personal access token, stored only as its SHA-256."""

    __tablename__ = "user_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("token"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="tokens")

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def password_matches(user: User | None, password: str) -> bool:
    """Whether `password` is `user`'s; as slow for unknown users and users without one."""
    if user is None or user.password_hash is None:
        check_password_hash(dummy_hash(), password)
        return False
    return check_password_hash(user.password_hash, password)
