"""Let ``airflow db migrate`` create and migrate Druidflow's tables inside the Airflow metadata DB.

Airflow discovers this manager through ``get_provider_info()["db-managers"]``. Druidflow's tables all start with
``druidflow_`` and its Alembic history has its own version table, so it never collides with Airflow's schema or
Airflow's ``alembic_version``. Task code does not reach these tables through Airflow's ORM (Airflow 3 forbids that);
it uses the ``druidflow_metadata`` Connection, see :mod:`druidflow.airflow.hooks`.
"""

from __future__ import annotations

import os

from airflow.utils.db_manager import BaseDBManager

import druidflow.metadata.migrations as _migrations
from druidflow.metadata.tables import metadata as _druidflow_metadata

#: The Alembic version table of Druidflow's own migration history (never Airflow's ``alembic_version``).
VERSION_TABLE = "druidflow_alembic_version"

_MIGRATION_DIR = os.path.dirname(os.path.abspath(_migrations.__file__))
_ALEMBIC_INI = os.path.join(os.path.dirname(_MIGRATION_DIR), "alembic.ini")


class DruidflowDBManager(BaseDBManager):
    """Creates (first run) or upgrades (later runs) the ``druidflow_*`` tables in Airflow's metadata DB.

    A fresh database gets ``metadata.create_all()`` plus ``alembic stamp head``; one that already has the tables
    gets ``alembic upgrade heads`` with the version kept in ``druidflow_alembic_version``.
    """

    metadata = _druidflow_metadata
    migration_dir = _MIGRATION_DIR
    alembic_file = _ALEMBIC_INI
    version_table_name = VERSION_TABLE
    # `airflow db reset` drops Airflow's tables; Druidflow's segment metadata is user data and stays unless the
    # user drops it with `airflow db-manager reset druidflow.airflow.db_manager.DruidflowDBManager`.
    supports_table_dropping = True

    def get_alembic_config(self):  # noqa: D102 - same contract as the base class
        from alembic.config import Config

        from airflow import settings

        # The package's alembic.ini is optional: everything env.py needs is set here.
        config = Config(self.alembic_file if os.path.exists(self.alembic_file) else None)
        config.set_main_option("script_location", self.migration_dir.replace("%", "%%"))
        config.set_main_option("sqlalchemy.url", settings.SQL_ALCHEMY_CONN.replace("%", "%%"))
        config.set_main_option("version_table", self.version_table_name)
        return config
