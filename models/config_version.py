"""The store-wide configuration version the data plane polls.

Any flush that adds, changes or deletes a configuration entity bumps the
version in the same transaction, whichever session (Flask-SQLAlchemy's or a
plain one) performs it.
"""

from __future__ import annotations

from datetime import datetime
from itertools import chain

from sqlalchemy import event, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime, utcnow

SINGLETON_ID = 1


class ConfigEntity:
    """Marker for models whose changes the data plane must pick up."""


class ConfigState(Base):
    """One row holding the current configuration version."""

    __tablename__ = "config_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def current_config_version(session: Session) -> int:
    """The configuration version as the store has it now."""
    version = session.scalar(select(ConfigState.version).where(ConfigState.id == SINGLETON_ID))
    return version or 0


@event.listens_for(Session, "before_flush")
def _bump_config_version(session: Session, _flush_context, _instances) -> None:
    changed = chain(
        session.new,
        session.deleted,
        (o for o in session.dirty if session.is_modified(o)),
    )
    if any(isinstance(obj, ConfigEntity) for obj in changed):
        session.execute(
            update(ConfigState)
            .where(ConfigState.id == SINGLETON_ID)
            .values(version=ConfigState.version + 1, updated_at=utcnow())
        )
