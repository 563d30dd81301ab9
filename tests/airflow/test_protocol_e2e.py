"""The new task types under a real scheduler (LocalExecutor, SQLite Airflow DB holding Druidflow's tables).

One cluster serves every run of this module: append and convert DAG runs side by side, a merge that waits in
reschedule mode for an index at priority 50, an index run that preempts a merge holding its lock at 25, a merge
whose build fails half-way, and a run marked failed by a person while its build is running.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.airflow.cluster import AirflowCluster, druidflow_cluster
from tests.airflow.conftest import DAGS_FOLDER
from tests.tasks.test_merge import METRICS, index_spec, rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLOW_DAG = textwrap.dedent(
    '''
    """A user DAG built from the protocol operators, whose build takes long enough to be stopped by hand."""
    import time
    from datetime import datetime

    from airflow.sdk import DAG

    from druidflow.operators.base import SpecSubmitOperator
    from druidflow.operators.druid_task import (
        DruidTaskAcquireLocksOperator, DruidTaskBuildOperator, DruidTaskPlanOperator, DruidTaskPublishOperator,
        DruidTaskReleaseOperator,
    )


    class SlowBuild(DruidTaskBuildOperator):
        def execute(self, context):
            time.sleep(90)
            return super().execute(context)


    with DAG("slow_merge", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
             render_template_as_native_obj=True):
        submit = SpecSubmitOperator(task_id="submit", spec="{{ params.spec }}", druid_task_type="merge")
        acquire = DruidTaskAcquireLocksOperator(task_id="acquire_locks", druid_task=submit.output)
        plan = DruidTaskPlanOperator(task_id="plan", druid_task=submit.output)
        build = SlowBuild.partial(task_id="build_segments", druid_task=submit.output, plan=plan.output["plan"],
                                  retries=0).expand(build_unit=plan.output)
        publish = DruidTaskPublishOperator(task_id="publish", druid_task=submit.output, plan=plan.output["plan"],
                                           build_results=build.output)
        release = DruidTaskReleaseOperator(task_id="release_locks", druid_task=submit.output)
        submit >> acquire >> plan >> build >> publish >> release
        release.as_teardown(setups=acquire, on_failure_fail_dagrun=True)
    '''
)

PROTOCOL_DAGS = ("druidflow_append", "druidflow_merge", "druidflow_convert", "druidflow_index")


@pytest.fixture(scope="module", params=["sqlite"])
def cluster(request, tmp_path_factory) -> Iterator[AirflowCluster]:
    home = tmp_path_factory.mktemp("airflow-protocol")
    dag_files = {f"{name}.py": (DAGS_FOLDER / f"{name}.py").read_text() for name in PROTOCOL_DAGS}
    dag_files["slow_merge.py"] = SLOW_DAG
    with druidflow_cluster(request, home, dag_files) as started:
        yield started


def _runtime(cluster: AirflowCluster):
    from druidflow.locks import TaskLockbox
    from druidflow.tasks.runtime import Runtime

    rt = Runtime.from_urls(cluster.db_url, str(cluster.deep_storage), cluster.home / "work-tests", migrate=False)
    rt.lockbox = TaskLockbox(rt.store.engine, lease_seconds=3600)  # in-process holders here send no heartbeat
    return rt


def _seed(rt, ds: str, days=(1, 2, 3)) -> list[dict[str, Any]]:
    from druidflow.tasks import index

    index.run(index_spec(rows(days=days), ds=ds), rt)
    return [s.payload() for s in sorted(rt.store.used_segments(ds), key=lambda s: s.interval.start)]


def _live_locks(rt, task_id: str) -> list[Any]:
    return [lk for lk in rt.lockbox.locks(task_id=task_id) if lk.active]


def _task_instances(cluster: AirflowCluster, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    r = cluster.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
    return r.json()["task_instances"]


def _finished(cluster: AirflowCluster, dag_id: str, run_id: str, timeout: float = 300) -> tuple[str, dict]:
    state = cluster.wait_for_run(dag_id, run_id, timeout=timeout)
    return state, cluster.task_states(dag_id, run_id)


def test_append_and_convert_runs_publish_label_their_builds_and_emit_asset_events(cluster):
    rt = _runtime(cluster)
    appended = _seed(rt, "e2e_append")
    _seed(rt, "e2e_convert")
    for dag_id in ("druidflow_append", "druidflow_convert"):
        cluster.wait_for_dag(dag_id)
    append_run = cluster.trigger("druidflow_append", {"spec": {"type": "append", "dataSource": "e2e_append", "segments": appended}})
    convert_run = cluster.trigger("druidflow_convert", {"data_source": "e2e_convert", "interval": "2024-01-01/2024-01-04",
                                                        "force": True, "index_spec": {"dimensionCompression": "zstd"}})

    state, states = _finished(cluster, "druidflow_append", append_run)
    assert state == "success", f"{states}\n{cluster.task_logs('druidflow_append', append_run)}"
    [out] = rt.store.used_segments("e2e_append")
    assert str(out.interval).startswith("2024-01-01") and out.num_rows == sum(s["numRows"] for s in appended)
    events = cluster.asset_events("druidflow://e2e_append")
    assert [e["extra"]["segments"] for e in events] == [[out.id]] and events[0]["source_task_id"] == "append.publish"
    report = cluster.xcom("druidflow_append", append_run, "append.publish")
    assert rt.store.get_task(report["taskId"]).status == "SUCCESS" and _live_locks(rt, report["taskId"]) == []
    [lock] = cluster.xcom("druidflow_append", append_run, "append.acquire_locks")
    assert lock["priority"] == 25

    state, states = _finished(cluster, "druidflow_convert", convert_run)
    assert state == "success", f"{states}\n{cluster.task_logs('druidflow_convert', convert_run)}"
    assert states["convert.build_segments"] == ["success"] * 3
    builds = [ti for ti in _task_instances(cluster, "druidflow_convert", convert_run) if ti["task_id"] == "convert.build_segments"]
    assert sorted(ti["rendered_map_index"] for ti in builds) == [f"2024-01-0{d}/2024-01-0{d + 1}#0" for d in (1, 2, 3)]
    assert all(ti["max_tries"] == 2 for ti in builds)  # the operator's retries, not 0
    assert all(s.version.endswith("_converted") for s in rt.store.used_segments("e2e_convert"))


def test_a_merge_at_25_waits_for_an_index_at_50_without_spending_retries(cluster):
    rt = _runtime(cluster)
    segments = _seed(rt, "e2e_wait")
    rt.store.insert_task("index_e2e_wait_busy", "index", "e2e_wait", "index_e2e_wait_busy", {"type": "index"})
    assert rt.lockbox.try_lock("index_e2e_wait_busy", datasource="e2e_wait", interval="2024-01-02/P1D", priority=50).acquired
    cluster.wait_for_dag("druidflow_merge")
    run_id = cluster.trigger("druidflow_merge", {"spec": {"type": "merge", "dataSource": "e2e_wait", "segments": segments,
                                                          "aggregations": METRICS}})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        acquire = next((ti for ti in _task_instances(cluster, "druidflow_merge", run_id) if ti["task_id"] == "merge.acquire_locks"), None)
        if acquire and acquire["state"] == "up_for_reschedule":
            break
        time.sleep(1)
    else:
        pytest.fail(f"acquire_locks never waited: {cluster.task_states('druidflow_merge', run_id)}")
    assert acquire["try_number"] == 1  # waiting is not a retry
    assert len(rt.store.used_segments("e2e_wait")) == 3  # nothing merged while the index holds day 2

    rt.lockbox.release_all("index_e2e_wait_busy")
    state, states = _finished(cluster, "druidflow_merge", run_id)
    assert state == "success", f"{states}\n{cluster.task_logs('druidflow_merge', run_id)}"
    assert len(rt.store.used_segments("e2e_wait")) == 1


def test_an_index_run_at_50_preempts_a_merge_holding_its_lock_at_25(cluster):
    from druidflow.exceptions import LockRevokedError
    from druidflow.tasks import merge, protocol

    rt = _runtime(cluster)
    segments = _seed(rt, "e2e_preempt")
    task = protocol.submit({"type": "merge", "dataSource": "e2e_preempt", "segments": segments, "aggregations": METRICS}, rt)
    protocol.acquire_locks(task, rt)
    the_plan = protocol.plan(task, rt)
    results = [protocol.build(task, the_plan, u, rt) for u in merge.DEFINITION.build_units(the_plan)]

    cluster.wait_for_dag("druidflow_index")
    spec = index_spec(rows(offset=500), ds="e2e_preempt")
    run_id = cluster.trigger("druidflow_index", {"spec": spec})
    state, states = _finished(cluster, "druidflow_index", run_id)
    assert state == "success", f"{states}\n{cluster.task_logs('druidflow_index', run_id)}"
    with pytest.raises(LockRevokedError):
        protocol.publish(task, the_plan, results, rt)
    protocol.release(task.task_id, rt)
    published = cluster.xcom("druidflow_index", run_id, "index.publish")
    used = rt.store.used_segments("e2e_preempt")
    assert {(str(s.interval), s.version) for s in used} == {(s["interval"], s["version"]) for s in published["segments"]}
    assert _live_locks(rt, task.task_id) == []


def test_a_failure_in_the_middle_publishes_nothing_and_releases_the_locks(cluster):
    rt = _runtime(cluster)
    _seed(rt, "e2e_broken")
    before = sorted(s.id for s in rt.store.used_segments("e2e_broken"))
    rt.storage.delete(rt.store.used_segments("e2e_broken")[1].load_spec)  # one build cannot read its segment
    cluster.wait_for_dag("druidflow_convert")
    run_id = cluster.trigger("druidflow_convert", {"spec": {"type": "convert_segment", "dataSource": "e2e_broken", "force": True,
                                                            "interval": "2024-01-01/2024-01-04", "indexSpec": {},
                                                            "id": "convert_e2e_broken"}})
    state, states = _finished(cluster, "druidflow_convert", run_id, timeout=420)
    assert state == "failed", states
    assert sorted(states["convert.build_segments"]) == ["failed", "success", "success"]
    assert states["convert.publish"] == ["upstream_failed"] and states["convert.release_locks"] == ["failed"]
    assert sorted(s.id for s in rt.store.used_segments("e2e_broken")) == before  # nothing converted
    assert _live_locks(rt, "convert_e2e_broken") == []
    assert rt.store.get_task("convert_e2e_broken").status == "FAILED"
    assert cluster.asset_events("druidflow://e2e_broken") == []


def test_a_run_marked_failed_during_its_build_ends_failed(cluster):
    rt = _runtime(cluster)
    segments = _seed(rt, "e2e_stopped")
    cluster.wait_for_dag("slow_merge")
    spec = {"type": "merge", "dataSource": "e2e_stopped", "segments": segments, "aggregations": METRICS, "id": "merge_e2e_stopped"}
    run_id = cluster.trigger("slow_merge", {"spec": spec})
    deadline = time.monotonic() + 180
    while cluster.task_states("slow_merge", run_id).get("build_segments") != ["running"]:
        assert time.monotonic() < deadline, cluster.task_states("slow_merge", run_id)
        time.sleep(1)
    r = cluster.api("PATCH", f"/api/v2/dags/slow_merge/dagRuns/{run_id}", json={"state": "failed"})
    assert r.status_code == 200, r.text

    state, states = _finished(cluster, "slow_merge", run_id)
    assert state == "failed", states
    assert states["release_locks"] == ["failed"]  # it ran, released, and failed the run: nothing was published
    assert states["publish"] == ["skipped"]
    assert _live_locks(rt, "merge_e2e_stopped") == []
    assert rt.store.get_task("merge_e2e_stopped").status == "FAILED"
    assert len(rt.store.used_segments("e2e_stopped")) == 3
