"""`run_admin.py platform-admin` and `notify-system`: who may post system notifications, and
posting one from the command line."""

from __future__ import annotations

from sqlalchemy import func, select

from models import User
from models.events import Event, record_event
from models.names import name_problem
from models.settings import Settings
from models.store import make_engine, make_session_factory

TITLE_MAX_CHARS = 200
MESSAGE_MAX_CHARS = 4000


def set_platform_admin(settings: Settings, email: str, grant: bool) -> User:
    """Make the user with `email` a platform admin (or, with grant False, no longer one)."""
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
        if user is None:
            raise SystemExit(f"error: no user with email {email.strip()}")
        user.platform_admin = grant
        session.commit()
        return user


def post_system_notification(settings: Settings, title: str, message: str) -> str:
    """Post a system notification every user sees; return its id."""
    if not title.strip() or len(title) > TITLE_MAX_CHARS or name_problem(title):
        raise SystemExit(f"error: --title: {name_problem(title) or 'Must be 1-200 characters.'}")
    if not message.strip() or len(message) > MESSAGE_MAX_CHARS or "\x00" in message:
        raise SystemExit("error: --message: Must be 1-4000 characters, without NUL.")
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        notification = record_event(
            session,
            Event(
                name="system.announcement",
                title=title,
                message=message,
                details={"postedBy": "cli"},
            ),
        )
        session.commit()
        return notification.id
