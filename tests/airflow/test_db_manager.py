"""`airflow db migrate` creates Druidflow's tables in the Airflow metadata DB, then upgrades them in place.

Runs the real CLI in a private AIRFLOW_HOME, once with SQLite and once with a fresh PostgreSQL database.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from druidflow.metadata.migrate import VERSION_TABLE, head_revision
from druidflow.metadata.tables import metadata
from tests.airflow.conftest import airflow_env, run_airflow

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def airflow_db_url(request, tmp_path):
    """A URL for a brand-new Airflow metadata database (a whole PostgreSQL database, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'airflow.db'}"
        return
    from tests.conftest import _pg_admin_engine

    request.getfixturevalue("pg_server")  # fails loudly when PostgreSQL is missing
    name = f"af_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = admin.url.set(database=name, drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop database "{name}" with (force)'))
    admin.dispose()


def test_airflow_db_migrate_creates_then_upgrades_druidflow_tables(tmp_path, airflow_db_url):
    env = airflow_env(tmp_path, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=airflow_db_url)

    first = run_airflow("db", "migrate", env=env, timeout=300)
    assert "Creating DruidflowDBManager tables" in first.stdout + first.stderr

    engine = sa.create_engine(airflow_db_url)
    tables = set(sa.inspect(engine).get_table_names())
    assert set(metadata.tables) <= tables
    assert VERSION_TABLE in tables and "alembic_version" in tables  # Airflow's history and ours, side by side
    with engine.begin() as conn:
        assert conn.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalar_one() == head_revision()
        conn.execute(sa.text(
            "insert into druidflow_rules (\"dataSource\", version, payload) values ('wiki', 'v1', '[]')"
        ))

    second = run_airflow("db", "migrate", env=env, timeout=300)
    assert "Migrated the DruidflowDBManager database" in second.stdout + second.stderr
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalar_one() == head_revision()
        assert conn.execute(sa.text("select count(*) from druidflow_rules")).scalar_one() == 1  # data kept
    engine.dispose()
