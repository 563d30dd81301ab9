"""Indexes for the console's page queries: each page reads an index range, never the whole table.

* segments by (dataSource, used, start_ms, end_ms) covering version, partition number, size and rows: the
  dataSources summary and the timeline aggregate read only this index;
* tasks by creation time, alone and per type and per status: the newest-first task list with any filter;
* lock events by (dataSource, version): which task took the lock a segment version came from.

Revision ID: df_console
Revises: df_trust
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "df_console"
down_revision = "df_trust"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_druidflow_segments_console", "druidflow_segments",
     ["dataSource", "used", "start_ms", "end_ms", "version", "partition_num", "size", "num_rows"]),
    ("ix_druidflow_tasks_created", "druidflow_tasks", ["created_date"]),
    ("ix_druidflow_tasks_type_created", "druidflow_tasks", ["type", "created_date"]),
    ("ix_druidflow_tasks_status_created", "druidflow_tasks", ["status", "created_date"]),
    ("ix_druidflow_lock_events_ds_version", "druidflow_lock_events", ["dataSource", "version"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
