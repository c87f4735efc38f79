"""telemetry and metrics history

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:42:43.408096
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metric_point_latency",
        sa.Column("proxy_id", sa.String(length=32), nullable=False),
        sa.Column("captured_at", sa.BigInteger(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "proxy_id", "captured_at", "bucket", name=op.f("pk_metric_point_latency")
        ),
    )
    op.create_table(
        "metric_points",
        sa.Column("proxy_id", sa.String(length=32), nullable=False),
        sa.Column("captured_at", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("connections", sa.BigInteger(), nullable=False),
        sa.Column("open_connections", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("proxy_id", "captured_at", name=op.f("pk_metric_points")),
    )
    op.create_table(
        "metric_totals",
        sa.Column("proxy_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("connections", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("proxy_id", name=op.f("pk_metric_totals")),
    )
    op.create_table(
        "telemetry_counters",
        sa.Column("proxy_id", sa.String(length=32), nullable=False),
        sa.Column("resolution", sa.String(length=8), nullable=False),
        sa.Column("period", sa.BigInteger(), nullable=False),
        sa.Column("leg", sa.String(length=8), nullable=False),
        sa.Column("dimension", sa.String(length=8), nullable=False),
        sa.Column("member", sa.String(length=8), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "proxy_id",
            "resolution",
            "period",
            "leg",
            "dimension",
            "member",
            name=op.f("pk_telemetry_counters"),
        ),
    )
    with op.batch_alter_table("telemetry_counters", schema=None) as batch_op:
        batch_op.create_index(
            "ix_telemetry_counters_client", ["client_id", "resolution", "period"], unique=False
        )
        batch_op.create_index(
            "ix_telemetry_counters_touched", ["resolution", "updated_at"], unique=False
        )

    op.create_table(
        "telemetry_watermarks",
        sa.Column("resolution", sa.String(length=8), nullable=False),
        sa.Column("compacted_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("resolution", name=op.f("pk_telemetry_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("telemetry_watermarks")
    with op.batch_alter_table("telemetry_counters", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_counters_touched")
        batch_op.drop_index("ix_telemetry_counters_client")

    op.drop_table("telemetry_counters")
    op.drop_table("metric_totals")
    op.drop_table("metric_points")
    op.drop_table("metric_point_latency")
