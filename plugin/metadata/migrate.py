"""Druidflow's Alembic migrations, run from Python.

The tables may live in the Airflow metadata DB, next to Airflow's own Alembic history, so Druidflow keeps its
revision in its own version table, ``druidflow_alembic_version`` (never ``alembic_version``). The same
``migrations/`` directory serves :meth:`druidflow.metadata.store.MetadataStore.migrate` and Airflow's
``airflow db migrate`` (through the provider's DB manager).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from druidflow.metadata.engine import make_engine
from druidflow.metadata.tables import PREFIX

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.environment import NameFilterParentNames, NameFilterType

VERSION_TABLE = f"{PREFIX}alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
ALEMBIC_INI = Path(__file__).with_name("alembic.ini")

#: The newest revision: a new migration chains on it and takes its place here. ``upgrade()`` compares the
#: database with it in one plain query, so that a database already at head costs no Alembic import or script
#: scan; a test keeps it equal to Alembic's own head.
HEAD_REVISION = "df_lockfast"

# Any constant will do: PostgreSQL advisory-lock key that serialises concurrent migrate() calls.
_PG_MIGRATION_LOCK = 0x6472756964666C6F  # "druidflo"


def alembic_config(url: Optional[str] = None, connection: Optional[Connection] = None) -> Config:
    """An Alembic ``Config`` for Druidflow's migrations, bound to ``connection`` or to ``url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("version_table", VERSION_TABLE)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url_or_engine: Union[str, Engine], revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest), in one transaction.

    Safe to call from several processes at once: on PostgreSQL an advisory lock serialises them, on SQLite the
    engine's ``BEGIN IMMEDIATE`` does; whoever comes second finds the work done.
    """
    engine = make_engine(url_or_engine)
    if revision == "head" and is_at_head(engine):
        return
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        command.upgrade(alembic_config(connection=conn), revision)


def is_at_head(url_or_engine: Union[str, Engine]) -> bool:
    """True when the database's Druidflow revision is :data:`HEAD_REVISION` (one query, no Alembic)."""
    with make_engine(url_or_engine).connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return False
        return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == [HEAD_REVISION]


def downgrade(url_or_engine: Union[str, Engine], revision: str = "base") -> None:
    """Take the database back to ``revision`` (default: no Druidflow tables at all)."""
    from alembic import command

    engine = make_engine(url_or_engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        command.downgrade(alembic_config(connection=conn), revision)


def current_revision(url_or_engine: Union[str, Engine]) -> Optional[str]:
    """The revision the database is at, or None when Druidflow's tables were never created."""
    from alembic.migration import MigrationContext

    with make_engine(url_or_engine).connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def head_revision() -> str:
    """The newest revision this version of Druidflow knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def include_name(name: Optional[str], type_: NameFilterType, parent_names: NameFilterParentNames) -> bool:
    """Autogenerate filter: only Druidflow's tables, whatever else shares the database (Airflow's tables)."""
    return type_ != "table" or bool(name and name.startswith(PREFIX))
