"""Credit ledger and prices (issue 13)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("amount_micro", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("proxy_id", sa.String(length=32), nullable=True),
        sa.Column("request_id", sa.String(length=80), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_credit_entries_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_entries")),
        sa.UniqueConstraint("request_id", name=op.f("uq_credit_entries_request_id")),
    )
    with op.batch_alter_table("credit_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credit_entries_client_id"), ["client_id"], unique=False
        )
    op.create_table(
        "client_budgets",
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("low_threshold_micro", sa.BigInteger(), nullable=False),
        sa.Column("granted_micro", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_budgets_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_client_budgets")),
    )
    op.create_table(
        "proxy_prices",
        sa.Column("proxy_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("per_request_micro", sa.BigInteger(), nullable=False),
        sa.Column("per_units_micro", sa.BigInteger(), nullable=False),
        sa.Column("unit_size", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["proxy_id"],
            ["proxies.id"],
            name=op.f("fk_proxy_prices_proxy_id_proxies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_proxy_prices_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("proxy_id", name=op.f("pk_proxy_prices")),
    )
    with op.batch_alter_table("proxy_prices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proxy_prices_client_id"), ["client_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("proxy_prices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proxy_prices_client_id"))
    op.drop_table("proxy_prices")
    op.drop_table("client_budgets")
    with op.batch_alter_table("credit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credit_entries_client_id"))
    op.drop_table("credit_entries")
