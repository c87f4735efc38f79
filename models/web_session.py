"""Web admin sessions, kept server-side: the browser holds only a random session secret.

A row per sign-in (password or token). Only the SHA-256 of the secret is
stored, like user tokens, so a copy of the database does not let anyone
resume a session. A session ends when the user signs out or revokes it
(the row is deleted), after `idle` without use, `absolute` after sign-in,
or when the user token it was started with is revoked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Index, String, delete, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.base import Base, UTCDateTime, utcnow
from models.ids import new_id
from models.tokens import hash_token
from models.user import User, UserToken

ADDRESS_LENGTH = 64
USER_AGENT_LENGTH = 300


class WebSession(Base):
    """One signed-in browser."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user_seen", "user_id", "last_seen_at"),)

    id: Mapped[str] = mapped_column(
        String(32), primary_key=True, default=lambda: new_id("web_session")
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token signed in with (None: password); revoking it ends the session.
    token_id: Mapped[str | None] = mapped_column(
        ForeignKey("user_tokens.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    address: Mapped[str | None] = mapped_column(String(ADDRESS_LENGTH))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_LENGTH))

    user: Mapped[User] = relationship()
    token: Mapped[UserToken | None] = relationship()

    @property
    def signed_in_with(self) -> str:
        return "password" if self.token_id is None else "token"


@dataclass(frozen=True)
class SessionTimeouts:
    """How long a session lives: `idle` since its last use, `absolute` since sign-in."""

    idle: timedelta
    absolute: timedelta

    @classmethod
    def of_seconds(cls, idle: int, absolute: int) -> SessionTimeouts:
        return cls(timedelta(seconds=idle), timedelta(seconds=absolute))

    def expires_at(self, web_session: WebSession) -> datetime:
        """When the session ends if it is not used again."""
        return min(web_session.last_seen_at + self.idle, web_session.created_at + self.absolute)

    def is_live(self, web_session: WebSession, now: datetime) -> bool:
        token = web_session.token
        if token is not None and token.revoked:
            return False
        return now < self.expires_at(web_session)

    def touch_after(self) -> timedelta:
        """How stale `last_seen_at` may get before a request records itself: a write per
        request is not needed, but the idle timeout must stay accurate."""
        return min(timedelta(minutes=1), self.idle / 10)


def new_session_secret() -> str:
    """The browser's proof of a session: 256 random bits."""
    return secrets.token_urlsafe(32)


def start_session(
    session: Session,
    user: User,
    *,
    token: UserToken | None,
    address: str | None,
    user_agent: str | None,
) -> tuple[WebSession, str]:
    """A new session for `user`; the secret is returned once and stored only hashed."""
    secret = new_session_secret()
    web_session = WebSession(
        user=user,
        secret_hash=hash_token(secret),
        token=token,
        address=(address or "")[:ADDRESS_LENGTH] or None,
        user_agent=(user_agent or "")[:USER_AGENT_LENGTH] or None,
    )
    session.add(web_session)
    return web_session, secret


def find_live_session(
    session: Session, secret: str, timeouts: SessionTimeouts, now: datetime
) -> WebSession | None:
    """The live session whose secret is `secret`, or None."""
    web_session = session.scalar(
        select(WebSession).where(WebSession.secret_hash == hash_token(secret))
    )
    if web_session is None or not timeouts.is_live(web_session, now):
        return None
    return web_session


def live_sessions(
    session: Session, user_id: str, timeouts: SessionTimeouts, now: datetime
) -> list[WebSession]:
    """`user_id`'s live sessions, most recently used first."""
    candidates = session.scalars(
        select(WebSession)
        .where(WebSession.user_id == user_id, WebSession.last_seen_at > now - timeouts.idle)
        .order_by(WebSession.last_seen_at.desc(), WebSession.id)
    )
    return [s for s in candidates if timeouts.is_live(s, now)]


def end_sessions_of_token(session: Session, token_id: str) -> int:
    """Delete the sessions started with token `token_id`; how many went."""
    result = session.execute(delete(WebSession).where(WebSession.token_id == token_id))
    return result.rowcount or 0


def purge_expired_sessions(session: Session, timeouts: SessionTimeouts, now: datetime) -> int:
    """Delete sessions past either timeout; how many went (the caller commits)."""
    result = session.execute(
        delete(WebSession).where(
            or_(
                WebSession.last_seen_at <= now - timeouts.idle,
                WebSession.created_at <= now - timeouts.absolute,
            )
        )
    )
    return result.rowcount or 0
