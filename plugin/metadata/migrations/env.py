"""Alembic environment for Druidflow's tables.

Run programmatically by :func:`druidflow.metadata.migrate.upgrade` (which passes a connection in
``config.attributes["connection"]``) or by Airflow's DB manager (which sets ``sqlalchemy.url``). The version
table is ``druidflow_alembic_version`` unless the caller's config names another.
"""

from __future__ import annotations

from typing import Optional

from alembic import context
from sqlalchemy.engine import Connection

from druidflow.exceptions import SpecError
from druidflow.metadata.migrate import VERSION_TABLE, include_name
from druidflow.metadata.tables import metadata

config = context.config
version_table = config.get_main_option("version_table") or VERSION_TABLE


def _configure(*, connection: Optional[Connection] = None, url: Optional[str] = None, literal_binds: bool = False) -> None:
    context.configure(
        connection=connection,
        url=url,
        literal_binds=literal_binds,
        target_metadata=metadata,
        version_table=version_table,
        include_name=include_name,
        compare_type=True,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table instead
    )


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from druidflow.metadata.engine import make_engine

    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise SpecError("sqlalchemy.url", None, "the migrations need a connection or a sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
