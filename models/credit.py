"""Budgets: a per-client append-only credit ledger, per-proxy prices, low-budget thresholds.

Amounts are integer micro-credits (1 credit = 1,000,000), exact on SQLite and
PostgreSQL alike; the API shows and takes them as decimal strings with at most
six decimals. A client's balance is always the sum of its ledger entries:
grants are positive, debits negative, and no entry is ever changed or deleted.

`ClientBudget` and `ProxyPrice` are configuration (their changes bump the
config version, so the data plane's snapshot follows them); ledger entries are
not, except that a grant also raises `ClientBudget.granted_micro` in the same
transaction, which bumps the version: the data plane learns of every grant.
Debits come from the data plane in batches and never bump the version.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import BigInteger, ForeignKey, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.config_version import ConfigEntity

MICRO = 1_000_000
MAX_AMOUNT_MICRO = 10**15  # one billion credits: far below 64-bit sums
# SQLite autoincrements only an INTEGER primary key.
SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")


class EntryKind(enum.StrEnum):
    GRANT = "grant"
    DEBIT = "debit"


class CreditEntry(Base):
    """One ledger line; never updated or deleted (the client's deletion takes them all)."""

    __tablename__ = "credit_entries"

    id: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    amount_micro: Mapped[int] = mapped_column(BigInteger)  # grants > 0, debits < 0
    description: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(64))  # a user id, "cli" or "data plane"
    proxy_id: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(80), unique=True)  # + ":<meter id>"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClientBudget(ConfigEntity, Base):
    """A client's low-budget threshold, and the grants total whose change bumps the version."""

    __tablename__ = "client_budgets"

    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    low_threshold_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    granted_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ProxyPrice(ConfigEntity, Base):
    """What a proxy's requests cost: per request, and per `unit_size` meter units."""

    __tablename__ = "proxy_prices"

    proxy_id: Mapped[str] = mapped_column(
        ForeignKey("proxies.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    per_request_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    per_units_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    unit_size: Mapped[int] = mapped_column(BigInteger, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


@dataclass(frozen=True)
class Price:
    """A proxy's price as the data plane holds it (all integers, micro-credits)."""

    per_request: int = 0
    per_units: int = 0  # for every `unit_size` meter units
    unit_size: int = 1

    def units_debit(self, units: float) -> int:
        """Micro-credits `units` meter units cost, rounded up (never charged below cost)."""
        if units <= 0 or self.per_units <= 0:
            return 0
        exact = Decimal(str(units)) * self.per_units / self.unit_size
        return int(exact.to_integral_value(rounding="ROUND_CEILING"))


def parse_credits(value) -> int:
    """Micro-credits from a decimal string or number; ValueError with a reason otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError('Must be a decimal number or string, e.g. "1.25".')
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("Not a valid decimal number.") from None
    if not amount.is_finite():
        raise ValueError("Not a valid decimal number.")
    micro = amount * MICRO
    if micro != micro.to_integral_value():
        raise ValueError("At most 6 decimal places.")
    if micro < 0:
        raise ValueError("Must not be negative.")
    if micro > MAX_AMOUNT_MICRO:
        raise ValueError(f"Must be at most {MAX_AMOUNT_MICRO // MICRO}.")
    return int(micro)


def format_credits(micro: int) -> str:
    """`1250000` → `"1.250000"`: exact, six decimals."""
    sign = "-" if micro < 0 else ""
    whole, fraction = divmod(abs(micro), MICRO)
    return f"{sign}{whole}.{fraction:06d}"


def balance_micro(session: Session, client_id: str) -> int:
    """The client's balance: the sum of its ledger entries."""
    total = session.scalar(
        select(func.sum(CreditEntry.amount_micro)).where(CreditEntry.client_id == client_id)
    )
    return int(total or 0)


def grant(
    session: Session, client_id: str, amount_micro: int, description: str, created_by: str
) -> CreditEntry:
    """Append a grant and raise the client's grants total (bumps the config version).

    The caller commits; both rows are written in one transaction or neither.
    """
    budget = session.get(ClientBudget, client_id)
    if budget is None:
        budget = ClientBudget(client_id=client_id, low_threshold_micro=0, granted_micro=0)
        session.add(budget)
    budget.granted_micro = (budget.granted_micro or 0) + amount_micro
    entry = CreditEntry(
        client_id=client_id,
        kind=EntryKind.GRANT.value,
        amount_micro=amount_micro,
        description=description,
        created_by=created_by,
    )
    session.add(entry)
    return entry


@dataclass(frozen=True)
class Debit:
    """One request's charge, as the data plane queues it for the ledger."""

    client_id: str
    proxy_id: str
    request_id: str
    amount_micro: int  # positive: what is taken
    description: str


def write_debits(session: Session, debits: list[Debit]) -> None:
    """Append debits; one already written (same request id) is not written again."""
    wanted = {debit.request_id: debit for debit in debits}
    present = set(
        session.scalars(
            select(CreditEntry.request_id).where(CreditEntry.request_id.in_(list(wanted)))
        )
    )
    for request_id, debit in wanted.items():
        if request_id in present:
            continue
        session.add(
            CreditEntry(
                client_id=debit.client_id,
                kind=EntryKind.DEBIT.value,
                amount_micro=-debit.amount_micro,
                description=debit.description,
                created_by="data plane",
                proxy_id=debit.proxy_id,
                request_id=request_id,
            )
        )


@dataclass(frozen=True)
class BudgetView:
    """A client's budget as of a snapshot build."""

    granted: int  # sum of grants (micro-credits)
    debited: int  # sum of debits written to the ledger by then (positive)
    low_threshold: int


def budget_views(session: Session) -> dict[str, BudgetView]:
    """Every client with a budget row or ledger entries, read in two grouped queries."""
    sums: dict[str, list[int]] = {}
    rows = session.execute(
        select(
            CreditEntry.client_id, CreditEntry.kind, func.sum(CreditEntry.amount_micro)
        ).group_by(CreditEntry.client_id, CreditEntry.kind)
    )
    for client_id, kind, total in rows:
        pair = sums.setdefault(client_id, [0, 0])
        if kind == EntryKind.DEBIT.value:
            pair[1] += -int(total or 0)
        else:
            pair[0] += int(total or 0)
    thresholds = dict(
        session.execute(select(ClientBudget.client_id, ClientBudget.low_threshold_micro)).all()
    )
    return {
        client_id: BudgetView(
            granted=sums.get(client_id, [0, 0])[0],
            debited=sums.get(client_id, [0, 0])[1],
            low_threshold=int(thresholds.get(client_id) or 0),
        )
        for client_id in set(sums) | set(thresholds)
    }


def proxy_prices(session: Session) -> dict[str, Price]:
    """Every priced proxy's price."""
    return {
        row.proxy_id: Price(row.per_request_micro, row.per_units_micro, row.unit_size)
        for row in session.scalars(select(ProxyPrice))
    }
