"""Payload filters at four scopes (issue 13)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payload_filters",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("credential_id", sa.String(length=32), nullable=True),
        sa.Column("proxy_id", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("paths", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "CAST(credential_id IS NOT NULL AS INTEGER) + CAST(proxy_id IS NOT NULL AS INTEGER)"
            " + CAST(target_id IS NOT NULL AS INTEGER) = 1",
            name=op.f("ck_payload_filters_one_parent"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_payload_filters_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_payload_filters_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["credential_id"], ["credentials.id"],
            name=op.f("fk_payload_filters_credential_id_credentials"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["proxy_id"], ["proxies.id"], name=op.f("fk_payload_filters_proxy_id_proxies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name=op.f("fk_payload_filters_target_id_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payload_filters")),
    )  # fmt: skip
    with op.batch_alter_table("payload_filters", schema=None) as batch_op:
        for column in ("client_id", "credential_id", "proxy_id", "target_id"):
            batch_op.create_index(
                batch_op.f(f"ix_payload_filters_{column}"), [column], unique=False
            )


def downgrade() -> None:
    with op.batch_alter_table("payload_filters", schema=None) as batch_op:
        for column in ("target_id", "proxy_id", "credential_id", "client_id"):
            batch_op.drop_index(batch_op.f(f"ix_payload_filters_{column}"))
    op.drop_table("payload_filters")
