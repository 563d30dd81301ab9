"""Concurrent append and replace: the upgrade-segments table (Druid's druid_upgradeSegments).

Revision ID: df_trust
Revises: df_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "df_trust"
down_revision = "df_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "druidflow_upgrade_segments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("segment_id", sa.String(length=512), nullable=False),
        sa.Column("upgrade_version", sa.String(length=255), nullable=False),
        sa.Column("created_date", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("segment_id", "upgrade_version", name="uq_druidflow_upgrade_segments_segment_version"),
    )
    op.create_index(
        "ix_druidflow_upgrade_segments_ds_version", "druidflow_upgrade_segments", ["dataSource", "upgrade_version"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_druidflow_upgrade_segments_ds_version", table_name="druidflow_upgrade_segments")
    op.drop_table("druidflow_upgrade_segments")
