"""End to end under a real scheduler (LocalExecutor), on SQLite and on PostgreSQL as the Airflow DB.

``dag.test()`` runs tasks in-process where Airflow's ORM still works; here tasks run in forked workers with the
ORM blocked, Connections come through the Execution API, and XComs/asset events go through the API server.
Druidflow's tables live in the Airflow DB (created by ``airflow db migrate`` through the provider's DB manager),
and tasks reach them only through the ``druidflow_metadata`` Connection.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.airflow.cluster import AirflowCluster
from tests.airflow.conftest import DAGS_FOLDER

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROBE_DAG = textwrap.dedent(
    '''
    """A task that uses Druidflow's metadata hook the way the operators do, and reports whether Airflow's ORM
    is reachable from task code (it must not be, under a real scheduler)."""
    from datetime import datetime

    from airflow.sdk import DAG, task

    with DAG("druidflow_probe", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):

        @task
        def probe(run_id=None):
            from druidflow.airflow.hooks import DruidflowMetadataHook

            hook = DruidflowMetadataHook()
            task_id = f"probe_{run_id}"
            hook.store.insert_task(task_id, "noop", "probe_ds", task_id, {"type": "noop"})
            lock = hook.lockbox.try_lock(task_id, datasource="probe_ds", interval="2024-01-01/P1D", priority=0)
            released = hook.lockbox.release_all(task_id)
            try:
                from airflow import settings

                settings.Session()
                orm = "allowed"
            except Exception as exc:  # Airflow 3: RuntimeError("Direct database access via the ORM is not allowed")
                orm = f"blocked: {exc}"
            return {"task": task_id, "locked": lock.acquired, "released": released, "orm": orm,
                    "dialect": hook.engine.dialect.name}

        probe()
    '''
)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def cluster(request, tmp_path_factory) -> Iterator[AirflowCluster]:
    """A running Airflow (scheduler, dag-processor, api-server) whose DB also holds Druidflow's tables."""
    home = tmp_path_factory.mktemp(f"airflow-{request.param}")
    dags = home / "dags"
    dags.mkdir()
    (dags / "druidflow_probe.py").write_text(PROBE_DAG)
    shutil.copy(DAGS_FOLDER / "druidflow_index.py", dags / "druidflow_index.py")
    deep = home / "deep-storage"

    pg_admin = pg_name = None
    if request.param == "sqlite":
        db_url = f"sqlite:///{home / 'airflow.db'}"
    else:
        from tests.conftest import _pg_admin_engine

        request.getfixturevalue("pg_server")
        pg_name = f"af_e2e_{uuid.uuid4().hex[:8]}"
        pg_admin = _pg_admin_engine()
        with pg_admin.connect() as conn:
            conn.execute(sa.text(f'create database "{pg_name}"'))
        db_url = pg_admin.url.set(database=pg_name, drivername="postgresql+psycopg2").render_as_string(
            hide_password=False
        )

    cluster = AirflowCluster(
        home=home,
        db_url=db_url,
        dags_folder=dags,
        extra_env={
            # The druidflow_metadata Connection points at the Airflow DB itself (where db migrate put the tables).
            "AIRFLOW_CONN_DRUIDFLOW_METADATA": db_url,
            "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE": json.dumps(
                {"conn_type": "druidflow_deep_storage", "extra": {"uri": str(deep)}}
            ),
            "DRUIDFLOW_WORK_DIR": str(home / "work"),
        },
    )
    cluster.deep_storage = deep  # type: ignore[attr-defined]
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        if pg_admin is not None:
            with pg_admin.connect() as conn:
                conn.execute(sa.text(f'drop database if exists "{pg_name}" with (force)'))
            pg_admin.dispose()


def _store(cluster: AirflowCluster):
    from druidflow.metadata.store import MetadataStore

    return MetadataStore(cluster.db_url)


def test_task_code_reaches_druidflow_tables_only_through_the_connection(cluster):
    """Infrastructure: migrate, provider, plugin, a scheduler run, the hook inside a real worker."""
    cluster.wait_for_dag("druidflow_probe")
    run_id = cluster.trigger("druidflow_probe", {})
    state = cluster.wait_for_run("druidflow_probe", run_id)
    assert state == "success", cluster.task_logs("druidflow_probe", run_id)

    result = cluster.xcom("druidflow_probe", run_id, "probe")
    assert result["locked"] is True and result["released"] == 1
    assert result["orm"].startswith("blocked"), "Airflow's ORM was reachable from task code"
    assert result["dialect"] == sa.engine.make_url(cluster.db_url).get_backend_name()
    record = _store(cluster).get_task(result["task"])
    assert record is not None and record.data_source == "probe_ds"

    # The plugin is mounted in the real API server and requires authentication.
    import httpx

    assert httpx.get(f"{cluster.base_url}/druidflow/tasks", timeout=10).status_code == 401
    listed = cluster.api("GET", "/druidflow/tasks", params={"dataSource": "probe_ds"}).json()
    assert [t["id"] for t in listed] == [result["task"]]
