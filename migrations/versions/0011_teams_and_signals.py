"""Teams and signals: invites, per-user notification reads, notifiers and their deliveries

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Notifications written before events had names, recognised by their titles.
KNOWN_TITLES = {
    "Async request could not be delivered": "async.dead_letter",
    "Credential needs reconnecting": "credential.needs_reconnect",
}


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("platform_admin", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column("client_id", existing_type=sa.String(length=32), nullable=True)
        batch_op.add_column(sa.Column("user_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("event", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("dedup_key", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_notifications_user_id"), ["user_id"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_notifications_dedup_key"), ["dedup_key"])
        batch_op.create_foreign_key(
            batch_op.f("fk_notifications_user_id_users"),
            "users",
            ["user_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.drop_column("read")
    notifications = sa.table("notifications", sa.column("title"), sa.column("event"))
    for title, event in KNOWN_TITLES.items():
        op.execute(
            notifications.update()
            .where(notifications.c.title == title, notifications.c.event.is_(None))
            .values(event=event)
        )

    op.create_table(
        "notification_reads",
        sa.Column("notification_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("read_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["notifications.id"],
            name=op.f("fk_notification_reads_notification_id_notifications"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_reads_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("notification_id", "user_id", name=op.f("pk_notification_reads")),
    )  # fmt: skip
    with op.batch_alter_table("notification_reads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_reads_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "invites",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_sent_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.String(length=32), nullable=True),
        sa.Column("revoked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_invites_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_invites_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["accepted_by"], ["users.id"], name=op.f("fk_invites_accepted_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invites")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invites_token_hash")),
    )  # fmt: skip
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invites_client_id"), ["client_id"], unique=False)

    op.create_table(
        "notifiers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subscribes_to", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("secret_key_id", sa.String(length=64), nullable=True),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_notifiers_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifiers")),
    )  # fmt: skip
    with op.batch_alter_table("notifiers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifiers_client_id"), ["client_id"], unique=False)

    op.create_table(
        "notifier_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("notifier_id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("deadline_at", sa.Float(), nullable=False),
        sa.Column("claimed_until", sa.Float(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["notifier_id"], ["notifiers.id"],
            name=op.f("fk_notifier_deliveries_notifier_id_notifiers"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifier_deliveries")),
    )  # fmt: skip
    with op.batch_alter_table("notifier_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifier_deliveries_due", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notifier_deliveries_notifier_id"), ["notifier_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notifier_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifier_deliveries_notifier_id"))
        batch_op.drop_index("ix_notifier_deliveries_due")
    op.drop_table("notifier_deliveries")
    with op.batch_alter_table("notifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifiers_client_id"))
    op.drop_table("notifiers")
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invites_client_id"))
    op.drop_table("invites")
    with op.batch_alter_table("notification_reads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_reads_user_id"))
    op.drop_table("notification_reads")
    # Only client notifications fit the old table; read state was per user and is lost.
    op.execute("DELETE FROM notifications WHERE client_id IS NULL")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("read", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.drop_constraint(batch_op.f("fk_notifications_user_id_users"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_notifications_dedup_key"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_notifications_user_id"))
        batch_op.drop_column("dedup_key")
        batch_op.drop_column("event")
        batch_op.drop_column("user_id")
        batch_op.alter_column("client_id", existing_type=sa.String(length=32), nullable=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("platform_admin")
