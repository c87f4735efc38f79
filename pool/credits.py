"""Pool credits (seed 003): whole credits per person, an append-only history of changes.

A balance always equals the sum of the person's `PoolCreditTransaction`s: grants and
purchases add, each acquired lease takes one, nothing is changed or deleted afterwards.
Both writes of a change (the balance and its transaction) happen in the caller's
transaction. The balance is never read-modified-written: a credit is an additive upsert
(`models.upsert.add_rows`), a charge a compare-and-set `UPDATE ... WHERE balance >= n`, so
concurrent writers in several processes neither lose a change nor overdraw.

The limits issue's ledger (`models.credit`) is per client, in micro-credits, written in
batches by the data plane; pool credits are per person and charged synchronously with the
lease, so they have their own table and share only the append-only rule.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.base import isoformat_z, utcnow
from models.names import name_problem
from models.pool import TX_TYPES, PoolAccount, PoolCreditTransaction
from models.settings import Settings
from models.upsert import add_rows
from pool.errors import invalid
from pool.events import credits_changed

GRANT_TYPES = tuple(t for t in TX_TYPES if t != "acquire")  # what an administrator adds
MAX_GRANT = 10**9
DESCRIPTION_MAX_CHARS = 500
RECENT_TRANSACTIONS = 20


def account(session: Session, user_id: str) -> PoolAccount:
    """The user's account, made at balance 0 if it is missing (not committed)."""
    _add(session, user_id, 0)
    return session.get(PoolAccount, user_id, populate_existing=True)


def _add(session: Session, user_id: str, amount: int) -> None:
    now = utcnow()
    row = {"user_id": user_id, "balance": amount, "created_at": now, "updated_at": now}
    add_rows(session, PoolAccount.__table__, [row], add=["balance"], replace=["updated_at"])


def check_amount(value: object, field: str = "amount") -> int:
    """A whole number of credits 1..10^9 (not a bool, not a float); 422 naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GRANT:
        raise invalid(field, f"must be a whole number of credits from 1 to {MAX_GRANT}")
    return value


def check_tx_type(value: object, field: str = "tx_type") -> str:
    if value not in GRANT_TYPES:
        raise invalid(field, f"must be one of {', '.join(GRANT_TYPES)}", allowed=list(GRANT_TYPES))
    return value


def check_description(value: object, field: str = "description") -> str:
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    problem = name_problem(value)
    if problem or len(value) > DESCRIPTION_MAX_CHARS:
        raise invalid(field, problem or f"at most {DESCRIPTION_MAX_CHARS} characters")
    return value.strip()


def add_credits(
    session: Session,
    user_id: str,
    amount: int,
    tx_type: str,
    description: str,
    created_by: str,
) -> PoolCreditTransaction:
    """Add `amount` credits (a purchase or a grant) and its transaction; the caller commits."""
    transaction = PoolCreditTransaction(
        user_id=user_id,
        amount=check_amount(amount),
        tx_type=check_tx_type(tx_type),
        description=check_description(description),
        created_by=created_by,
    )
    _add(session, user_id, amount)
    session.add(transaction)
    session.flush()
    return transaction


def grant_credits(
    session: Session,
    settings: Settings,
    user_id: str,
    amount: int,
    tx_type: str,
    description: str,
    created_by: str,
) -> tuple[PoolCreditTransaction, int]:
    """`add_credits` and the pool's events about the new balance (one place for the API,
    the CLI and the web); the transaction and the new balance. The caller commits."""
    transaction = add_credits(session, user_id, amount, tx_type, description, created_by)
    new_balance = balance(session, user_id)
    credits_changed(session, settings, user_id, new_balance)
    return transaction, new_balance


def balance(session: Session, user_id: str) -> int:
    """The user's balance (0 without an account)."""
    found = session.scalar(select(PoolAccount.balance).where(PoolAccount.user_id == user_id))
    return found or 0


def charge(
    session: Session, user_id: str, amount: int, description: str, lease_id: str | None
) -> int | None:
    """Take `amount` credits if the balance covers them (compare-and-set) and record the
    `acquire` transaction; the new balance, or None when it does not cover them (nothing
    written). The caller commits."""
    new_balance = session.execute(
        update(PoolAccount)
        .where(PoolAccount.user_id == user_id, PoolAccount.balance >= amount)
        .values(balance=PoolAccount.balance - amount, updated_at=utcnow())
        .returning(PoolAccount.balance)
        .execution_options(synchronize_session=False)
    ).scalar()
    if new_balance is None:
        return None
    session.add(
        PoolCreditTransaction(
            user_id=user_id,
            amount=-amount,
            tx_type="acquire",
            description=description[:DESCRIPTION_MAX_CHARS],
            lease_id=lease_id,
            created_by="self",
        )
    )
    session.flush()
    return new_balance


def transaction_record(t: PoolCreditTransaction) -> dict:
    """One transaction in seed 003's shape."""
    return {
        "amount": t.amount,
        "tx_type": t.tx_type,
        "description": t.description,
        "created_at": isoformat_z(t.created_at),
    }


def credits_record(session: Session, user_id: str, limit: int = RECENT_TRANSACTIONS) -> dict:
    """Seed 003's `GET /account/credits`: the balance and the newest transactions first."""
    recent = session.scalars(
        select(PoolCreditTransaction)
        .where(PoolCreditTransaction.user_id == user_id)
        .order_by(PoolCreditTransaction.id.desc())
        .limit(limit)
    ).all()
    return {
        "balance": balance(session, user_id),
        "recent_transactions": [transaction_record(t) for t in recent],
    }
