"""Alembic environment for Druidflow's tables.

Run programmatically by :func:`druidflow.metadata.migrate.upgrade` (which passes a connection in
``config.attributes["connection"]``) or by Airflow's DB manager (which sets ``sqlalchemy.url``). The version
table is ``druidflow_alembic_version`` unless the caller's config names another.
"""

from __future__ import annotations

from alembic import context

from druidflow.metadata.migrate import VERSION_TABLE, include_name
from druidflow.metadata.tables import metadata

config = context.config
version_table = config.get_main_option("version_table") or VERSION_TABLE


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=version_table,
        include_name=include_name,
        compare_type=True,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table instead
        **kwargs,
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

    engine = make_engine(config.get_main_option("sqlalchemy.url"))
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
