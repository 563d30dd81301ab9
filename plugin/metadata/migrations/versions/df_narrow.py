"""Narrow segment columns: the shard spec's type and core partition count, so that visibility reads no payload.

``shard_type`` is the payload's ``shardSpec.type``; ``core_partitions`` the size of the core partition set by the
engine's shard-spec rules (:func:`druidflow.segments.timeline.core_partitions_column`): ``none`` and ``tombstone``
1, ``linear`` 0, ``numbered``/``hashed`` their ``partitions``, ``single``/``range`` their ``numCorePartitions``, NULL
when that is absent (a set that must chain its ranges). Existing rows are backfilled from their payloads in SQL, in
the migration's transaction. The console's covering index gains ``core_partitions``, so that the per-set
aggregate visibility runs reads the index alone.

Revision ID: df_narrow
Revises: df_push
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "df_narrow"
down_revision = "df_push"
branch_labels = None
depends_on = None

TABLE = "druidflow_segments"
CONSOLE_INDEX = "ix_druidflow_segments_console"
CONSOLE_COLUMNS = ["dataSource", "used", "start_ms", "end_ms", "version", "partition_num", "size", "num_rows"]


def _json_text(dialect: str, path: str) -> str:
    """SQL for the text at ``shardSpec.<path>`` of the payload (NULL when absent)."""
    if dialect == "postgresql":
        return f"(convert_from(payload, 'UTF8')::json -> 'shardSpec' ->> '{path}')"
    return f"json_extract(CAST(payload AS TEXT), '$.shardSpec.{path}')"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("shard_type", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("core_partitions", sa.Integer(), nullable=True))
    kind = _json_text(dialect, "type")
    partitions = f"CAST({_json_text(dialect, 'partitions')} AS INTEGER)"
    num_core = f"CAST({_json_text(dialect, 'numCorePartitions')} AS INTEGER)"
    op.execute(
        f"UPDATE {TABLE} SET shard_type = COALESCE({kind}, 'numbered'), core_partitions = CASE COALESCE({kind}, 'numbered')"
        f" WHEN 'none' THEN 1 WHEN 'tombstone' THEN 1 WHEN 'linear' THEN 0"
        f" WHEN 'single' THEN {num_core} WHEN 'range' THEN {num_core}"
        f" ELSE COALESCE({partitions}, 0) END"
    )
    with op.batch_alter_table(TABLE) as batch:
        batch.alter_column("shard_type", existing_type=sa.String(length=32), nullable=False)
    # The console's covering index also covers the partition-set aggregate of visibility.
    op.drop_index(CONSOLE_INDEX, table_name=TABLE)
    op.create_index(CONSOLE_INDEX, TABLE, [*CONSOLE_COLUMNS, "core_partitions"], unique=False)


def downgrade() -> None:
    op.drop_index(CONSOLE_INDEX, table_name=TABLE)
    op.create_index(CONSOLE_INDEX, TABLE, CONSOLE_COLUMNS, unique=False)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("core_partitions")
        batch.drop_column("shard_type")
