"""Stream push: the spool of acknowledged events, and per dataSource its pending count and what handoffs committed.

Revision ID: df_push
Revises: df_trust
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "df_push"
down_revision = "df_kafka"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("druidflow_push_spool",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("bucket_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("bucket_end_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_date", sa.String(length=32), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_druidflow_push_spool_ds_bucket", "druidflow_push_spool", ["dataSource", "bucket_start_ms", "id"], unique=False)

    op.create_table("druidflow_push_datasources",
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("pending_events", sa.BigInteger(), nullable=False),
        sa.Column("committed_events", sa.BigInteger(), nullable=False),
        sa.Column("committed_batches", sa.BigInteger(), nullable=False),
        sa.Column("last_spool_id", sa.BigInteger(), nullable=False),
        sa.Column("last_task_id", sa.String(length=255), nullable=True),
        sa.Column("updated_date", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("dataSource")
    )


def downgrade() -> None:
    op.drop_table("druidflow_push_datasources")
    op.drop_index("ix_druidflow_push_spool_ds_bucket", table_name="druidflow_push_spool")
    op.drop_table("druidflow_push_spool")
