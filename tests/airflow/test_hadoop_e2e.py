"""``druidflow_index_hadoop`` under a real scheduler: a triggered run, and a task POSTed to Druid's Overlord API, drive
the Spark job (local mode) from its ``build_segments`` instance, publish, and release their locks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.airflow.cluster import AirflowCluster, druidflow_cluster
from tests.airflow.conftest import DAGS_FOLDER
from tests.tasks.test_index_hadoop import hadoop_spec, write_static
from tests.tasks.test_index_partitioning import dup_heavy_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", params=["sqlite"])
def cluster(request, tmp_path_factory) -> Iterator[AirflowCluster]:
    pytest.importorskip("pyspark")
    home = tmp_path_factory.mktemp("airflow-hadoop")
    dag_files = {"druidflow_index_hadoop.py": (DAGS_FOLDER / "druidflow_index_hadoop.py").read_text()}
    with druidflow_cluster(request, home, dag_files, extra_env={"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin"}) as started:
        yield started


def test_a_triggered_run_builds_with_spark_and_publishes(cluster, tmp_path):
    from druidflow.tasks.runtime import Runtime

    rows = dup_heavy_rows(1000)
    static = write_static(tmp_path, rows, n_files=2)
    spec = hadoop_spec("hadoop_e2e", {"type": "static", "paths": f"{static}/*.json"}, {"type": "hashed", "numShards": 2},
                       jobProperties={"spark.master": "local[2]", "spark.ui.enabled": "false"})
    cluster.wait_for_dag("druidflow_index_hadoop")
    run_id = cluster.trigger("druidflow_index_hadoop", {"spec": spec})
    state = cluster.wait_for_run("druidflow_index_hadoop", run_id, timeout=600)
    assert state == "success", cluster.task_logs("druidflow_index_hadoop", run_id)[-4000:]
    states = cluster.task_states("druidflow_index_hadoop", run_id)
    assert states["index_hadoop.build_segments"] == ["success"]  # one mapped instance: the Spark job
    rt = Runtime.from_urls(cluster.db_url, str(cluster.deep_storage), tmp_path / "work", migrate=False)
    segments = rt.store.used_segments("hadoop_e2e")
    assert len(segments) == 4 and {s.shard_spec.type for s in segments} == {"hashed"}
    assert sum(s.num_rows for s in segments) > 0
    assert not [lk for lk in rt.lockbox.locks(datasource="hadoop_e2e") if lk.active]


def test_an_index_hadoop_task_posted_to_the_overlord_api_runs_and_publishes(cluster, tmp_path):
    from druidflow.tasks.runtime import Runtime

    static = write_static(tmp_path, dup_heavy_rows(500), n_files=2)
    spec = hadoop_spec("hadoop_api", {"type": "static", "paths": f"{static}/*.json"}, {"type": "hashed", "numShards": 2},
                       jobProperties={"spark.master": "local[2]", "spark.ui.enabled": "false"})
    cluster.wait_for_dag("druidflow_index_hadoop")
    auth = ("admin", "admin")
    posted = httpx.post(f"{cluster.base_url}/druid/indexer/v1/task", json=spec, auth=auth, timeout=30)
    assert posted.status_code == 200, posted.text
    task_id = posted.json()["task"]
    deadline, status = time.monotonic() + 600, None
    while time.monotonic() < deadline:
        r = httpx.get(f"{cluster.base_url}/druid/indexer/v1/task/{task_id}/status", auth=auth, timeout=30)
        assert r.status_code == 200, r.text
        status = r.json()["status"]
        if status["statusCode"] in ("SUCCESS", "FAILED"):
            break
        time.sleep(1)
    assert status and status["statusCode"] == "SUCCESS", (status, cluster.tail_logs())
    assert status["type"] == "index_hadoop"
    rt = Runtime.from_urls(cluster.db_url, str(cluster.deep_storage), tmp_path / "work", migrate=False)
    segments = rt.store.used_segments("hadoop_api")
    assert {s.shard_spec.type for s in segments} == {"hashed"} and sum(s.num_rows for s in segments) > 0
    # The task ran as a run of druidflow_index_hadoop whose run id is the Druid task id; its release step may end
    # after the status reads SUCCESS (the status is the publish's).
    assert cluster.wait_for_run("druidflow_index_hadoop", task_id) == "success"
    assert not [lk for lk in rt.lockbox.locks(datasource="hadoop_api") if lk.active]
