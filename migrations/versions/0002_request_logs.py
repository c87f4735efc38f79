"""request logs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 11:51:57.874217
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_logs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("proxy_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("processed_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("proxy_data", sa.JSON(), nullable=False),
        sa.Column("target_data", sa.JSON(), nullable=True),
        sa.Column("validation_data", sa.JSON(), nullable=False),
        sa.Column("request_body", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_logs")),
    )
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_logs_client_id"), ["client_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_request_logs_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            "ix_request_logs_proxy_processed", ["proxy_id", "processed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_request_logs_proxy_processed")
        batch_op.drop_index(batch_op.f("ix_request_logs_expires_at"))
        batch_op.drop_index(batch_op.f("ix_request_logs_client_id"))

    op.drop_table("request_logs")
