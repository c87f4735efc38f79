"""Streaming limits per proxy, MCP proxies, body and MCP rule checks

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 00:13:01.797253
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("limit_mode", sa.String(length=16), server_default="estimate", nullable=False)
        )

    with op.batch_alter_table("proxies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_response_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("mcp", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("body_checks", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
        batch_op.add_column(sa.Column("body_pattern", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "body_pattern_presence",
                sa.String(length=8),
                server_default="present",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("mcp_methods", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("mcp_tools", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "mcp_tools_presence", sa.String(length=8), server_default="present", nullable=False
            )
        )

    with op.batch_alter_table("telemetry_counters", schema=None) as batch_op:
        batch_op.alter_column(
            "member",
            existing_type=sa.VARCHAR(length=40),
            type_=sa.String(length=128),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("telemetry_counters", schema=None) as batch_op:
        batch_op.alter_column(
            "member",
            existing_type=sa.String(length=128),
            type_=sa.VARCHAR(length=40),
            existing_nullable=False,
        )

    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.drop_column("mcp_tools_presence")
        batch_op.drop_column("mcp_tools")
        batch_op.drop_column("mcp_methods")
        batch_op.drop_column("body_pattern_presence")
        batch_op.drop_column("body_pattern")
        batch_op.drop_column("body_checks")

    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_column("limit_mode")

    with op.batch_alter_table("proxies", schema=None) as batch_op:
        batch_op.drop_column("mcp")
        batch_op.drop_column("max_response_bytes")
