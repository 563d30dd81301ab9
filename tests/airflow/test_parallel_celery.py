"""``druidflow_index_parallel`` under a real CeleryExecutor: Redis as the broker, PostgreSQL as the Airflow DB (which
also holds Druidflow's tables), S3 over HTTP (a moto server) as deep storage, Celery workers started by the test.

The first worker is SIGKILLed (with every task process it runs) while it builds partial segments; the second worker,
started then, picks up the retries. The run must succeed with every row counted exactly once, perfect rollup, no
lock left and no partial file left in S3. This is the deployment docker-compose.yaml describes.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator

import pyarrow.compute as pc
import pytest

from tests.airflow.cluster import AirflowCluster
from tests.airflow.conftest import DAGS_FOLDER

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROWS = 400_000
DAG_ID = "druidflow_index_parallel"


def write_input(directory, n_rows: int, n_files: int = 2) -> None:
    rng = random.Random(7)
    directory.mkdir(parents=True, exist_ok=True)
    per = n_rows // n_files
    for f in range(n_files):
        lines = []
        for _ in range(per):
            day = rng.randint(1, 2)
            lines.append(
                json.dumps({"ts": f"2024-01-0{day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
                            "a": f"a{rng.randint(0, 2000)}", "b": f"b{rng.randint(0, 9)}", "v": rng.randint(0, 9)})
            )
        (directory / f"part-{f}.json").write_text("\n".join(lines) + "\n")


def parallel_spec(base_dir) -> dict:
    return {
        "type": "index_parallel",
        "spec": {
            "dataSchema": {
                "dataSource": "celery_pp",
                "timestampSpec": {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["a", "b"]},
                "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "v", "fieldName": "v"}],
                "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "intervals": ["2024-01-01/2024-01-03"]},
            },
            "ioConfig": {"type": "index_parallel", "inputSource": {"type": "local", "baseDir": str(base_dir), "filter": "*.json"}, "inputFormat": {"type": "json"}},
            "tuningConfig": {
                "type": "index_parallel",
                "forceGuaranteedRollup": True,
                "partitionsSpec": {"type": "hashed", "numShards": 2},
                "splitHintSpec": {"type": "maxSize", "maxSplitSize": "4MiB"},
                "maxNumConcurrentSubTasks": 4,
                "maxRetry": 3,
            },
        },
    }


@pytest.fixture(scope="module")
def celery_cluster(request, tmp_path_factory, s3_server) -> Iterator[tuple[AirflowCluster, str, str]]:
    import sqlalchemy as sa

    from tests.conftest import _pg_admin_engine

    request.getfixturevalue("pg_server")
    home = tmp_path_factory.mktemp("airflow-celery")
    dags = home / "dags"
    dags.mkdir()
    (dags / "druidflow_index_parallel.py").write_text((DAGS_FOLDER / "druidflow_index_parallel.py").read_text())
    pg_name = f"af_celery_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{pg_name}"'))
    db_url = admin.url.set(database=pg_name, drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    bucket = s3_server.make_bucket()
    queue = f"druidflow-{uuid.uuid4().hex[:8]}"  # a private queue: other test runs on this Redis never see our tasks
    cluster = AirflowCluster(
        home=home,
        db_url=db_url,
        dags_folder=dags,
        executor="CeleryExecutor",
        workers=1,
        extra_env={
            "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/13",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__CORE__PARALLELISM": "8",
            # A SIGKILLed worker stops heartbeating: its task instances fail (and are retried) after this many seconds.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW_CONN_DRUIDFLOW_METADATA": db_url,
            "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE": json.dumps(
                {
                    "conn_type": "druidflow_deep_storage",
                    "login": s3_server.access_key_id,
                    "password": s3_server.secret_access_key,
                    "extra": {"uri": f"s3://{bucket}/segments", "endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region},
                }
            ),
            "DRUIDFLOW_WORK_DIR": str(home / "work"),
        },
    )
    try:
        yield cluster.start(), db_url, bucket
    finally:
        cluster.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{pg_name}" with (force)'))
        admin.dispose()


def task_instances(cluster: AirflowCluster, run_id: str) -> list[dict]:
    r = cluster.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
    return r.json()["task_instances"]


def test_a_worker_killed_mid_build_is_retried_on_the_other_worker(celery_cluster, tmp_path, s3_server):
    from druidflow.tasks.runtime import Runtime
    from tests.tasks.test_index import rows_of

    cluster, db_url, bucket = celery_cluster
    write_input(tmp_path / "input", ROWS)
    cluster.wait_for_dag(DAG_ID)
    run_id = cluster.trigger(DAG_ID, {"spec": parallel_spec(tmp_path / "input")})

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        running = [t for t in task_instances(cluster, run_id) if t["task_id"].endswith("partial_segments") and t["state"] == "running"]
        if running:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no partial_segments instance ran: {cluster.task_states(DAG_ID, run_id)}\n{cluster.tail_logs()}")
    cluster.kill("worker-1")  # mid-build: the worker and its task processes die at once
    cluster.start_worker("worker-2")

    state = cluster.wait_for_run(DAG_ID, run_id, timeout=600)
    tis = task_instances(cluster, run_id)
    assert state == "success", f"{cluster.task_states(DAG_ID, run_id)}\n{cluster.task_logs(DAG_ID, run_id)[-8000:]}"
    partials = [t for t in tis if t["task_id"].endswith("partial_segments")]
    assert len(partials) >= 4 and max(t["try_number"] for t in partials) >= 2  # the killed build was retried
    assert {t["rendered_map_index"].split(":")[0] for t in partials} == {f"split-{i}" for i in range(len(partials))}

    rt = Runtime.from_urls(db_url, f"s3://{bucket}/segments", tmp_path / "work", migrate=False, **s3_server.options)
    storage = rt.storage
    visible = rows_of(rt, "celery_pp")
    assert pc.sum(visible["count"]).as_py() == ROWS  # nothing lost, nothing counted twice
    keys = list(zip(visible["__time"].to_pylist(), visible["a"].to_pylist(), visible["b"].to_pylist()))
    assert len(keys) == len(set(keys))  # perfect rollup across the splits
    assert all(not lk.active for lk in rt.lockbox.locks(datasource="celery_pp"))
    assert list(storage.list_keys("_partials/")) == []  # every attempt's partials deleted, the killed one's too
    record = [t for t in rt.store.list_tasks() if t.type == "index_parallel"]
    assert [t.status for t in record] == ["SUCCESS"]
    report = record[0].report["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert report["processed"] == ROWS
