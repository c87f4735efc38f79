"""`run_admin.py pool-key` and `pool-check`: issuing `pp_` keys to the pool API, and one
check cycle over the proxies due, from the command line."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from models import User
from models.settings import Settings
from models.store import make_engine, make_session_factory
from pool.errors import PoolError
from pool.keys import issue_key, revoke_keys


def _user(session, email: str) -> User:
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        raise SystemExit(f"error: no user with email {email.strip()}")
    return user


def pool_key(settings: Settings, email: str, label: str) -> tuple[str, str]:
    """Issue a key to the user with `email`; return the user's email and the key's only
    plain copy."""
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        user = _user(session, email)
        try:
            _, raw = issue_key(session, user, label)
        except PoolError as error:
            raise SystemExit(f"error: --{error.message}") from None
        session.commit()
        return user.email, raw


def revoke_pool_keys(settings: Settings, email: str, prefix: str) -> int:
    """Revoke the user's keys starting with `prefix`; return how many."""
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        try:
            count = revoke_keys(session, _user(session, email), prefix.strip())
        except PoolError as error:
            raise SystemExit(f"error: --revoke: {error.message}") from None
        session.commit()
        return count


def pool_check(settings: Settings) -> dict:
    """One check cycle over every proxy due now; its counts."""
    from models.crypto import load_key_ring

    try:
        from pool.check_cycle import run_check_cycle
    except ImportError:
        raise SystemExit("error: this build has no pool check cycle yet") from None

    key_ring, _ = load_key_ring(settings.master_keys, settings.master_key_file)
    try:
        return run_check_cycle(settings, key_ring)
    except PoolError as error:  # no judge known, or it does not answer
        raise SystemExit(f"error: {error.message}") from None


def pool_credits(
    settings: Settings, email: str, amount: str, tx_type: str, description: str
) -> tuple[str, int]:
    """Add `amount` credits (a grant or a purchase) to the pool account of the user with
    `email`; return the user's email and the new balance."""
    from pool.credits import grant_credits

    if not re.fullmatch(r"[0-9]{1,10}", amount.strip()):
        raise SystemExit("error: amount: must be a whole number of credits from 1 to 1000000000")
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        user = _user(session, email)
        try:
            _, new_balance = grant_credits(
                session, settings, user.id, int(amount), tx_type, description, "cli"
            )
        except PoolError as error:
            field = error.details.get("field", "")
            prefix = "" if field == "amount" else "--"
            raise SystemExit(f"error: {prefix}{error.message}") from None
        session.commit()
        return user.email, new_balance
