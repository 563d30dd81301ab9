"""Streaming: the committed offsets per dataSource (Druid's druid_dataSource) and the supervisors.

Revision ID: df_kafka
Revises: df_console
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "df_kafka"
down_revision = "df_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("druidflow_datasource_metadata",
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("created_date", sa.String(length=32), nullable=False),
        sa.Column("updated_date", sa.String(length=32), nullable=False),
        sa.Column("commit_metadata_payload", sa.Text(), nullable=False),
        sa.Column("commit_metadata_sha1", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("dataSource")
    )
    op.create_table("druidflow_supervisors",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("created_date", sa.String(length=32), nullable=False),
        sa.Column("updated_date", sa.String(length=32), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )


def downgrade() -> None:
    op.drop_table("druidflow_supervisors")
    op.drop_table("druidflow_datasource_metadata")
