"""The egress proxy pool: sources, proxies, check history, pp_ keys

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 18:32:45.671683
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pool_sources",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("parser_name", sa.String(length=64), nullable=False),
        sa.Column("cron_schedule", sa.String(length=120), nullable=False),
        sa.Column("default_protocol", sa.String(length=8), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("last_scraped_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_scrape_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_result", sa.JSON(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("scrape_claimed_until", sa.Float(), nullable=True),
        sa.Column("scrape_claimed_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_sources")),
    )
    with op.batch_alter_table("pool_sources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pool_sources_next_scrape_at"), ["next_scrape_at"], unique=False
        )

    op.create_table(
        "pool_api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_pool_api_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_pool_api_keys_key_hash")),
    )
    with op.batch_alter_table("pool_api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pool_api_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "pool_proxies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("password_key_id", sa.String(length=64), nullable=True),
        sa.Column("password_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("anonymity", sa.String(length=12), nullable=True),
        sa.Column("exit_ip", sa.String(length=45), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("avg_latency_ms", sa.Float(), nullable=True),
        sa.Column("uptime_pct", sa.Float(), nullable=True),
        sa.Column("checks_total", sa.Integer(), nullable=False),
        sa.Column("checks_passed", sa.Integer(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_checked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dead_since", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.Float(), nullable=False),
        sa.Column("check_claimed_until", sa.Float(), nullable=True),
        sa.Column("source_id", sa.String(length=36), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["pool_sources.id"],
            name=op.f("fk_pool_proxies_source_id_pool_sources"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_proxies")),
        sa.UniqueConstraint("protocol", "host", "port", name="uq_pool_proxies_endpoint"),
    )
    with op.batch_alter_table("pool_proxies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pool_proxies_anonymity_score", ["anonymity", "score", "id"], unique=False
        )
        batch_op.create_index("ix_pool_proxies_checked", ["last_checked_at", "id"], unique=False)
        batch_op.create_index(
            "ix_pool_proxies_country_score", ["country", "score", "id"], unique=False
        )
        batch_op.create_index("ix_pool_proxies_due", ["next_check_at"], unique=False)
        batch_op.create_index(
            "ix_pool_proxies_filters",
            [
                "status",
                "protocol",
                "anonymity",
                "country",
                "score",
                "avg_latency_ms",
                "uptime_pct",
                "last_checked_at",
            ],
            unique=False,
        )
        batch_op.create_index("ix_pool_proxies_latency", ["avg_latency_ms", "id"], unique=False)
        batch_op.create_index(
            "ix_pool_proxies_protocol_score", ["protocol", "score", "id"], unique=False
        )
        batch_op.create_index("ix_pool_proxies_score", ["score", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pool_proxies_source_id"), ["source_id"], unique=False)
        batch_op.create_index(
            "ix_pool_proxies_status_checked", ["status", "last_checked_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_pool_proxies_status_latency", ["status", "avg_latency_ms", "id"], unique=False
        )
        batch_op.create_index(
            "ix_pool_proxies_status_score", ["status", "score", "id"], unique=False
        )
        batch_op.create_index(
            "ix_pool_proxies_status_uptime", ["status", "uptime_pct", "id"], unique=False
        )
        batch_op.create_index("ix_pool_proxies_uptime", ["uptime_pct", "id"], unique=False)

    op.create_table(
        "pool_checks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("proxy_id", sa.String(length=36), nullable=False),
        sa.Column("checker_name", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["proxy_id"],
            ["pool_proxies.id"],
            name=op.f("fk_pool_checks_proxy_id_pool_proxies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_checks")),
    )
    with op.batch_alter_table("pool_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pool_checks_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            "ix_pool_checks_proxy_created", ["proxy_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pool_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_pool_checks_proxy_created")
        batch_op.drop_index(batch_op.f("ix_pool_checks_created_at"))

    op.drop_table("pool_checks")
    with op.batch_alter_table("pool_proxies", schema=None) as batch_op:
        batch_op.drop_index("ix_pool_proxies_uptime")
        batch_op.drop_index("ix_pool_proxies_status_uptime")
        batch_op.drop_index("ix_pool_proxies_status_score")
        batch_op.drop_index("ix_pool_proxies_status_latency")
        batch_op.drop_index("ix_pool_proxies_status_checked")
        batch_op.drop_index(batch_op.f("ix_pool_proxies_source_id"))
        batch_op.drop_index("ix_pool_proxies_score")
        batch_op.drop_index("ix_pool_proxies_protocol_score")
        batch_op.drop_index("ix_pool_proxies_latency")
        batch_op.drop_index("ix_pool_proxies_filters")
        batch_op.drop_index("ix_pool_proxies_due")
        batch_op.drop_index("ix_pool_proxies_country_score")
        batch_op.drop_index("ix_pool_proxies_checked")
        batch_op.drop_index("ix_pool_proxies_anonymity_score")

    op.drop_table("pool_proxies")
    with op.batch_alter_table("pool_api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pool_api_keys_user_id"))

    op.drop_table("pool_api_keys")
    with op.batch_alter_table("pool_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pool_sources_next_scrape_at"))

    op.drop_table("pool_sources")
