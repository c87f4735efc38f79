"""OAuth2 grants of target credentials and Connects in progress (issue 14)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credential_grants",
        sa.Column("credential_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("refresh_key_id", sa.String(length=64), nullable=True),
        sa.Column("refresh_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("connected_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("connected_by", sa.String(length=32), nullable=True),
        sa.Column("last_refresh_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("access_expires_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refreshing_until", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"], ["credentials.id"],
            name=op.f("fk_credential_grants_credential_id_credentials"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_credential_grants_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connected_by"], ["users.id"], name=op.f("fk_credential_grants_connected_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("credential_id", name=op.f("pk_credential_grants")),
    )  # fmt: skip
    with op.batch_alter_table("credential_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credential_grants_client_id"), ["client_id"], unique=False
        )
    op.create_table(
        "oauth_authorizations",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("credential_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("verifier_key_id", sa.String(length=64), nullable=True),
        sa.Column("verifier_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["credential_id"], ["credentials.id"],
            name=op.f("fk_oauth_authorizations_credential_id_credentials"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oauth_authorizations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_oauth_authorizations")),
    )  # fmt: skip
    with op.batch_alter_table("oauth_authorizations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_authorizations_credential_id"), ["credential_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_authorizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_authorizations_credential_id"))
    op.drop_table("oauth_authorizations")
    with op.batch_alter_table("credential_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credential_grants_client_id"))
    op.drop_table("credential_grants")
