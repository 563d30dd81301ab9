"""The first Druidflow tables: segments, pending segments, tasks, rules, and the lockbox's three tables.

Revision ID: df_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "df_0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = (
    "druidflow_segments",
    "druidflow_pending_segments",
    "druidflow_tasks",
    "druidflow_rules",
    "druidflow_lock_datasources",
    "druidflow_task_locks",
    "druidflow_lock_events",
)


def upgrade() -> None:
    op.create_table("druidflow_lock_datasources",
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("last_version", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("dataSource")
    )

    op.create_table("druidflow_lock_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("group_id", sa.String(length=255), nullable=True),
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("interval", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("posse_id", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_druidflow_lock_events_ds_id", "druidflow_lock_events", ["dataSource", "id"], unique=False)
    op.create_index("ix_druidflow_lock_events_task", "druidflow_lock_events", ["task_id"], unique=False)

    op.create_table("druidflow_pending_segments",
        sa.Column("id", sa.String(length=512), nullable=False),
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("created_date", sa.String(length=32), nullable=False),
        sa.Column("start", sa.String(length=40), nullable=False),
        sa.Column("end", sa.String(length=40), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("partition_num", sa.Integer(), nullable=False),
        sa.Column("sequence_name", sa.String(length=255), nullable=False),
        sa.Column("sequence_prev_id", sa.String(length=512), nullable=False),
        sa.Column("sequence_name_prev_id_sha1", sa.String(length=64), nullable=False),
        sa.Column("task_allocator_id", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sequence_name_prev_id_sha1", name="uq_druidflow_pending_segments_sha1")
    )
    op.create_index("ix_druidflow_pending_segments_allocator", "druidflow_pending_segments", ["dataSource", "task_allocator_id"], unique=False)
    op.create_index("ix_druidflow_pending_segments_ds_sequence", "druidflow_pending_segments", ["dataSource", "sequence_name"], unique=False)
    op.create_index("ix_druidflow_pending_segments_ds_start_end", "druidflow_pending_segments", ["dataSource", "start_ms", "end_ms"], unique=False)

    op.create_table("druidflow_rules",
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("dataSource")
    )

    op.create_table("druidflow_segments",
        sa.Column("id", sa.String(length=512), nullable=False),
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("created_date", sa.String(length=32), nullable=False),
        sa.Column("start", sa.String(length=40), nullable=False),
        sa.Column("end", sa.String(length=40), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("partitioned", sa.Boolean(), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("partition_num", sa.Integer(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.Column("used_status_last_updated", sa.String(length=32), nullable=False),
        sa.Column("unused_reason", sa.String(length=64), nullable=True),
        sa.Column("kill_task_id", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("num_rows", sa.BigInteger(), nullable=False),
        sa.Column("load_path", sa.String(length=1024), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_druidflow_segments_ds_start_end", "druidflow_segments", ["dataSource", "start_ms", "end_ms"], unique=False)
    op.create_index("ix_druidflow_segments_ds_used_start_end", "druidflow_segments", ["dataSource", "used", "start_ms", "end_ms"], unique=False)
    op.create_index("ix_druidflow_segments_kill_task", "druidflow_segments", ["kill_task_id"], unique=False)
    op.create_index("ix_druidflow_segments_load_path", "druidflow_segments", ["load_path"], unique=False)

    op.create_table("druidflow_task_locks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("posse_id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("group_id", sa.String(length=255), nullable=False),
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("interval", sa.String(length=100), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("lease_expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("expired_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_date", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("posse_id", "task_id", name="uq_druidflow_task_locks_posse_task")
    )
    op.create_index("ix_druidflow_task_locks_ds_start_end", "druidflow_task_locks", ["dataSource", "start_ms", "end_ms"], unique=False)
    op.create_index("ix_druidflow_task_locks_task", "druidflow_task_locks", ["task_id"], unique=False)

    op.create_table("druidflow_tasks",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("dataSource", sa.String(length=255), nullable=False),
        sa.Column("group_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status_payload", sa.Text(), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("error_msg", sa.Text(), nullable=True),
        sa.Column("created_date", sa.String(length=32), nullable=False),
        sa.Column("updated_date", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_druidflow_tasks_active_created", "druidflow_tasks", ["active", "created_date"], unique=False)
    op.create_index("ix_druidflow_tasks_ds_created", "druidflow_tasks", ["dataSource", "created_date"], unique=False)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
