"""Let ``airflow db migrate`` create and migrate Druidflow's tables inside the Airflow metadata DB.

Airflow discovers this manager through ``get_provider_info()["db-managers"]``. Druidflow's tables all start with
``druidflow_`` and its Alembic history has its own version table, so it never collides with Airflow's schema or
Airflow's ``alembic_version``. Task code does not reach these tables through Airflow's ORM (Airflow 3 forbids that);
it uses the ``druidflow_metadata`` Connection, see :mod:`druidflow.airflow.hooks`.
"""

from __future__ import annotations

from airflow.utils.db_manager import BaseDBManager

from druidflow.metadata.migrate import ALEMBIC_INI, MIGRATIONS_DIR, VERSION_TABLE, alembic_config
from druidflow.metadata.tables import metadata as _druidflow_metadata


class DruidflowDBManager(BaseDBManager):
    """Creates (first run) or upgrades (later runs) the ``druidflow_*`` tables in Airflow's metadata DB.

    A fresh database gets ``metadata.create_all()`` plus ``alembic stamp head``; one that already has the tables
    gets ``alembic upgrade heads`` with the version kept in ``druidflow_alembic_version``.
    """

    metadata = _druidflow_metadata
    migration_dir = str(MIGRATIONS_DIR)
    alembic_file = str(ALEMBIC_INI)
    version_table_name = VERSION_TABLE
    # `airflow db reset` rebuilds Airflow's own tables but leaves Druidflow's: they are the only record of which
    # files in deep storage are published segments, and losing them would orphan those files. To drop them on
    # purpose: `python -c "from druidflow.metadata.migrate import downgrade; downgrade('<url>', 'base')"`.
    supports_table_dropping = False

    def get_alembic_config(self):
        """Druidflow's own Alembic config (migrations dir, version table), bound to Airflow's database URL."""
        from airflow import settings

        return alembic_config(url=settings.SQL_ALCHEMY_CONN)
