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
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.airflow.cluster import AirflowCluster, druidflow_cluster
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


CONSUMER_DAG = textwrap.dedent(
    '''
    """Scheduled on new data of the wikipedia dataSource: reads the segment ids from the triggering event."""
    from datetime import datetime

    from airflow.sdk import DAG, Asset, task

    with DAG("wikipedia_consumer", schedule=[Asset("druidflow://wikipedia")], start_date=datetime(2024, 1, 1)):

        @task
        def consume(triggering_asset_events=None):
            # The mapping may list one event under several keys (the asset, its alias); ids are what count.
            events = [e for evs in triggering_asset_events.values() for e in evs]
            return {"keys": sorted(str(k) for k in triggering_asset_events),
                    "sources": sorted({e.source_run_id for e in events}),
                    "segments": sorted({s for e in events for s in e.extra["segments"]})}

        consume()
    '''
)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def cluster(request, tmp_path_factory) -> Iterator[AirflowCluster]:
    """A running Airflow (scheduler, dag-processor, api-server) whose DB also holds Druidflow's tables."""
    home = tmp_path_factory.mktemp(f"airflow-{request.param}")
    dag_files = {
        "druidflow_probe.py": PROBE_DAG,
        "wikipedia_consumer.py": CONSUMER_DAG,
        "druidflow_index.py": (DAGS_FOLDER / "druidflow_index.py").read_text(),
    }
    with druidflow_cluster(request, home, dag_files) as started:
        yield started


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


SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wikipedia-sample.json"


def _wikipedia_spec(input_dir: Path, data_source: str) -> dict:
    spec = json.loads((SAMPLE.parent / "wikipedia-index.json").read_text())
    spec["spec"]["dataSchema"]["dataSource"] = data_source
    spec["spec"]["ioConfig"]["inputSource"]["baseDir"] = str(input_dir)
    return spec


def _input_dir(cluster: AirflowCluster, name: str) -> Path:
    path = cluster.home / "inputs" / name
    path.mkdir(parents=True)
    shutil.copy(SAMPLE, path / SAMPLE.name)
    return path


def test_druidflow_index_publishes_segments_and_emits_the_asset_event(cluster):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    from druidflow.query import visible_rows
    from druidflow.storage import deep_storage_from_uri

    cluster.wait_for_dag("druidflow_index")
    cluster.wait_for_dag("wikipedia_consumer")
    spec = _wikipedia_spec(_input_dir(cluster, "ok"), "wikipedia")
    run_id = cluster.trigger("druidflow_index", {"spec": spec})
    state = cluster.wait_for_run("druidflow_index", run_id)
    states = cluster.task_states("druidflow_index", run_id)
    assert state == "success", f"{states}\n{cluster.task_logs('druidflow_index', run_id)}"
    assert states["index.build_segments"] == ["success"] * 7  # one mapped instance per day

    store = _store(cluster)
    segments = store.used_segments("wikipedia")
    assert sorted(str(s.interval)[:10] for s in segments) == [f"2024-01-0{d}" for d in range(1, 8)]
    rows = pa.Table.from_batches(list(visible_rows(store, deep_storage_from_uri(str(cluster.deep_storage)), "wikipedia")))
    raw = pj.read_json(SAMPLE)
    assert pc.sum(rows["count"]).as_py() == raw.num_rows  # every input row is counted once
    assert pc.sum(rows["added"]).as_py() == pc.sum(raw["added"]).as_py()

    report = cluster.xcom("druidflow_index", run_id, "index.publish")
    assert report["reports"]["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]["processed"] == raw.num_rows
    task_id = report["taskId"]
    assert store.get_task(task_id).status == "SUCCESS"

    events = cluster.asset_events("druidflow://wikipedia")
    assert len(events) == 1
    assert events[0]["source_run_id"] == run_id and events[0]["source_task_id"] == "index.publish"
    assert sorted(events[0]["extra"]["segments"]) == sorted(s.id for s in segments)

    # A DAG scheduled on Asset("druidflow://wikipedia") ran because of it, and saw the segment ids.
    import time

    deadline = time.monotonic() + 60
    while not (runs := cluster.dag_runs("wikipedia_consumer")) and time.monotonic() < deadline:
        time.sleep(1)
    assert runs and runs[0]["run_type"] == "asset_triggered"
    assert cluster.wait_for_run("wikipedia_consumer", runs[0]["dag_run_id"]) == "success"
    consumed = cluster.xcom("wikipedia_consumer", runs[0]["dag_run_id"], "consume")
    assert consumed["sources"] == [run_id], consumed["keys"]
    assert consumed["segments"] == sorted(s.id for s in segments)

    from druidflow.locks import TaskLockbox

    assert [lk for lk in TaskLockbox(store.engine).locks(task_id=task_id) if lk.active] == []


def test_hashed_partitioning_maps_one_build_per_chunk_and_shard(cluster):
    import pyarrow as pa
    import pyarrow.compute as pc

    from druidflow.query import visible_rows
    from druidflow.storage import deep_storage_from_uri

    cluster.wait_for_dag("druidflow_index")
    spec = _wikipedia_spec(_input_dir(cluster, "hashed"), "wikipedia_hashed")
    spec["spec"]["dataSchema"]["granularitySpec"]["intervals"] = ["2024-01-01/2024-01-03"]
    spec["spec"]["tuningConfig"] = {"type": "index", "forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "numShards": 3}}
    run_id = cluster.trigger("druidflow_index", {"spec": spec})
    state = cluster.wait_for_run("druidflow_index", run_id)
    states = cluster.task_states("druidflow_index", run_id)
    assert state == "success", f"{states}\n{cluster.task_logs('druidflow_index', run_id)}"
    assert states["index.build_segments"] == ["success"] * 6  # 2 days x 3 shards, one mapped instance each
    store = _store(cluster)
    segments = store.used_segments("wikipedia_hashed")
    assert sorted((str(s.interval)[:10], s.partition_num) for s in segments) == [
        (day, p) for day in ("2024-01-01", "2024-01-02") for p in range(3)
    ]
    assert {s.shard_spec.type for s in segments} == {"hashed"}
    rows = pa.Table.from_batches(
        list(visible_rows(store, deep_storage_from_uri(str(cluster.deep_storage)), "wikipedia_hashed"))
    )
    report = cluster.xcom("druidflow_index", run_id, "index.publish")
    stats = report["reports"]["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert pc.sum(rows["count"]).as_py() == stats["processed"]  # each row counted once across the six builds
    assert stats["thrownAway"] == 16000 - stats["processed"]  # the other five days, counted by one build only


def test_a_failed_build_is_torn_down_locks_released_nothing_published(cluster):
    cluster.wait_for_dag("druidflow_index")
    input_dir = _input_dir(cluster, "bad")
    (input_dir / SAMPLE.name).write_text('{"timestamp": "2024-01-02T00:00:00Z", "page": "x"\n' * 5)
    spec = _wikipedia_spec(input_dir, "wiki_broken")
    spec["spec"]["tuningConfig"]["maxParseExceptions"] = 0  # any unparseable row fails the build
    run_id = cluster.trigger("druidflow_index", {"spec": spec})
    state = cluster.wait_for_run("druidflow_index", run_id)
    states = cluster.task_states("druidflow_index", run_id)
    assert state == "failed", states
    assert states["index.acquire_locks"] == ["success"]
    assert "failed" in states["index.build_segments"]
    assert states["index.publish"] == ["upstream_failed"]
    assert states["index.release_locks"] == ["failed"]  # the teardown ran, released, and reports the task's failure

    store = _store(cluster)
    assert store.used_segments("wiki_broken") == []
    from druidflow.locks import TaskLockbox

    task_id = cluster.xcom("druidflow_index", run_id, "index.submit")["id"]
    assert [lk for lk in TaskLockbox(store.engine).locks(task_id=task_id) if lk.active] == []
    record = store.get_task(task_id)
    assert record.status == "FAILED" and record.error_msg
    assert cluster.asset_events("druidflow://wiki_broken") == []


def test_cli_trigger_with_a_trigger_form_error_fails_before_any_work(cluster):
    from tests.airflow.conftest import run_airflow

    cluster.wait_for_dag("druidflow_index")
    out = run_airflow(
        "dags", "trigger", "druidflow_index", "--conf", json.dumps({"data_source": "wiki_cli", "input": []}),
        "-o", "json", env=cluster.env,
    )
    last_line = [line for line in out.stdout.splitlines() if line.startswith("[{")][-1]  # after Airflow's log lines
    run_id = json.loads(last_line)[0]["dag_run_id"]
    assert cluster.wait_for_run("druidflow_index", run_id) == "failed"
    states = cluster.task_states("druidflow_index", run_id)
    assert states["index.submit"] == ["failed"]
    assert states["index.acquire_locks"] == ["upstream_failed"]
    log = cluster.task_logs("druidflow_index", run_id)
    assert "Trigger form field 'input'" in log


def test_input_without_rows_succeeds_with_no_segments(cluster):
    """No intervals and no rows: zero build units, the mapped build is skipped, publish still records success."""
    cluster.wait_for_dag("druidflow_index")
    input_dir = cluster.home / "inputs" / "empty"
    input_dir.mkdir(parents=True)
    (input_dir / SAMPLE.name).write_text("")
    spec = _wikipedia_spec(input_dir, "wiki_empty")
    del spec["spec"]["dataSchema"]["granularitySpec"]["intervals"]
    run_id = cluster.trigger("druidflow_index", {"spec": spec})
    assert cluster.wait_for_run("druidflow_index", run_id) == "success", cluster.task_states("druidflow_index", run_id)
    states = cluster.task_states("druidflow_index", run_id)
    assert states["index.build_segments"] == ["skipped"] and states["index.publish"] == ["success"]
    task_id = cluster.xcom("druidflow_index", run_id, "index.submit")["id"]
    assert _store(cluster).get_task(task_id).status == "SUCCESS"
    assert cluster.asset_events("druidflow://wiki_empty") == []  # nothing published, no event
