"""The lockbox's one-round-trip functions on PostgreSQL (``druidflow.locks.fast_path``): a new lock where nothing
overlaps, and a task's release of all its locks, each a PL/pgSQL function called as one statement. No table
changes; nothing on SQLite.

Revision ID: df_lockfast
Revises: df_narrow
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "df_lockfast"
down_revision = "df_narrow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from druidflow.locks.fast_path import install

    install(op.get_bind())


def downgrade() -> None:
    from druidflow.locks.fast_path import ACQUIRE_FUNCTION, RELEASE_FUNCTION

    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {ACQUIRE_FUNCTION}(text, text, text, text, text, bigint, bigint, "
                         "text, text, integer, bigint, text, boolean)")
    bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {RELEASE_FUNCTION}(text, text, bigint, text[])")
