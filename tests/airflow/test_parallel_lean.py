"""The folded steps of the lean index_parallel group, run in-process on SQLite and local deep storage with XComs
handed over as JSON: the setup resubmits the same Druid task on a retry, the teardown publishes only a complete set
of merges and always deletes the partials and releases the locks. (Under a real scheduler: test_parallel_dag.py and
test_parallel_celery.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from druidflow.operators.druid_task import DruidTaskBuildOperator
from druidflow.operators.parallel import ParallelMergesOperator, ParallelPartialOperator
from druidflow.operators.parallel_lean import (
    DRUID_TASK_ID_KEY,
    ParallelLeanDecideOperator,
    ParallelPublishReleaseOperator,
    ParallelSubmitLockSplitOperator,
)
from tests.airflow.test_operators import context, xcom
from tests.tasks.test_index_parallel import parallel_spec, visible, write_files
from tests.tasks.test_index_partitioning import dup_heavy_rows

SETUP, MERGES, MERGE = "g.submit_lock_split", "g.plan_merges", "g.merge_segments"


class RunXComs:
    """The XComs of one run by task id (a mapped task's as a list), and the run's state, as the API server keeps them."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}
        self.run_state = "running"


class TI:
    """What the lean operators use of a RuntimeTaskInstance."""

    dag_id, run_id = "druidflow_index_parallel", "manual__1"

    def __init__(self, run: RunXComs, task_id: str, try_number: int = 1) -> None:
        self.run, self.task_id, self.try_number = run, task_id, try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = json.loads(json.dumps(value))
        self.run.values[(self.task_id, key)] = self.pushed[key]

    def xcom_pull(self, task_ids: Any, key: str = "return_value") -> Any:
        if isinstance(task_ids, list):  # every map index of a mapped task
            return self.run.values.get((task_ids[0], key), [])
        return self.run.values.get((task_ids, key))

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
        return self.run.run_state


class StateStore(dict):
    def set(self, key: str, value: Any) -> None:
        self[key] = value


def ctx(run: RunXComs, task_id: str, store: StateStore | None = None, try_number: int = 1) -> dict[str, Any]:
    out = context(ti=TI(run, task_id, try_number))
    if store is not None:
        out["task_state_store"] = store
    return out


@pytest.fixture
def env(monkeypatch, sqlite_url, tmp_path):
    from druidflow.tasks.runtime import Runtime

    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")
    monkeypatch.setenv("AIRFLOW_CONN_DRUIDFLOW_METADATA", sqlite_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE", json.dumps({"conn_type": "druidflow_deep_storage", "extra": {"uri": str(tmp_path / "deep")}})
    )
    rows = dup_heavy_rows(3000)
    spec = parallel_spec(write_files(tmp_path, rows, n_files=2), {"type": "hashed", "numShards": 2}, split={"type": "maxSize", "maxSplitSize": 20_000})
    return rt, spec, rows


def setup_step(run: RunXComs, spec: dict, store: StateStore, try_number: int = 1) -> list[dict]:
    c = ctx(run, SETUP, store, try_number)
    out = xcom(ParallelSubmitLockSplitOperator(task_id=SETUP, spec=spec).execute(c))
    run.values[(SETUP, "return_value")] = out
    return out


def run_until_merged(run: RunXComs, spec: dict, store: StateStore) -> tuple[dict, list[dict]]:
    """setup >> decide >> partials >> plan_merges >> merges; returns the task and the merge results."""
    assert setup_step(run, spec, store) == []  # hashed with numShards and intervals: no scan, decided at once
    task = run.values[(SETUP, "druid_task")]
    c = ctx(run, "g.decide_partitions")
    splits = xcom(ParallelLeanDecideOperator(task_id="g.decide_partitions", setup_task_id=SETUP, scans=[]).execute(c))
    plan = c["ti"].pushed["plan"]
    partials = [xcom(ParallelPartialOperator(task_id="p", druid_task=task, plan=plan, split=s).execute(ctx(run, "p"))) for s in splits]
    c = ctx(run, MERGES)
    units = xcom(ParallelMergesOperator(task_id=MERGES, druid_task=task, plan=plan, partials=partials).execute(c))
    run.values[(MERGES, "return_value")] = units
    final = c["ti"].pushed["final_plan"]
    results = [xcom(DruidTaskBuildOperator(task_id=MERGE, druid_task=task, plan=final, build_unit=u).execute(ctx(run, MERGE))) for u in units]
    assert len(splits) >= 2 and len(units) == 4  # two days, two hash shards each
    return task, results


def teardown(run: RunXComs, task: dict) -> ParallelPublishReleaseOperator:
    return ParallelPublishReleaseOperator(task_id="g.publish_release", druid_task=task, merges_task_id=MERGES, merge_task_id=MERGE)


def test_the_lean_steps_publish_what_the_in_process_task_publishes(env):
    from druidflow.segments.descriptor import DataSegment
    from druidflow.tasks import parallel

    rt, spec, rows = env
    run, store = RunXComs(), StateStore()
    task, results = run_until_merged(run, spec, store)
    run.values[(MERGE, "return_value")] = results
    c = ctx(run, "g.publish_release")
    out = xcom(teardown(run, task).execute(c))
    assert out["status"] == "SUCCESS" and out["taskId"] == task["id"]
    published = sorted(DataSegment.model_validate(s).id for s in out["segments"])  # what the Overlord's GET .../segments reads
    assert published == sorted(s.id for s in rt.store.used_segments("pp")) and len(published) == 4

    reference = json.loads(json.dumps(spec))
    reference["spec"]["dataSchema"]["dataSource"] = "ref"
    parallel.run(reference, rt)
    assert visible(rt, "pp") == visible(rt, "ref") and sum(r["count"] for r in visible(rt, "pp")) == len(rows)
    assert rt.store.get_task(task["id"]).status == "SUCCESS"
    assert not any(lk.active for lk in rt.lockbox.locks(datasource="pp"))
    assert list(rt.storage.list_keys(parallel.partial_prefix(task["id"]) + "/")) == []
    assert c["outlet_events"]  # the druidflow://pp Asset event went out through the alias


def test_a_retried_setup_resubmits_the_same_task_and_a_finished_one_starts_anew(env):
    rt, spec, _ = env
    run, store = RunXComs(), StateStore()
    setup_step(run, spec, store)
    first = store[DRUID_TASK_ID_KEY]
    setup_step(run, spec, store, try_number=2)  # e.g. after the worker died mid-split: its own locks are reused
    assert store[DRUID_TASK_ID_KEY] == first
    assert [t.id for t in rt.store.list_tasks()] == [first]
    assert {lk.task_id for lk in rt.lockbox.locks(datasource="pp") if lk.active} == {first}

    rt.store.set_task_status(first, "SUCCESS")  # the run ended; a person clears it to run it again
    rt.lockbox.release_all(first)
    setup_step(run, spec, store)
    assert store[DRUID_TASK_ID_KEY] != first and len(rt.store.list_tasks()) == 2


def test_the_teardown_publishes_nothing_when_a_merge_did_not_finish_and_still_cleans_up(env):
    from druidflow.tasks import parallel

    rt, spec, _ = env
    run, store = RunXComs(), StateStore()
    task, results = run_until_merged(run, spec, store)
    run.values[(MERGE, "return_value")] = results[:1]  # the other merge instance failed for good
    with pytest.raises(AirflowFailException, match="ended FAILED"):
        teardown(run, task).execute(ctx(run, "g.publish_release"))
    assert rt.store.used_segments("pp") == []  # nothing published: no half a task
    assert rt.store.get_task(task["id"]).status == "FAILED"
    assert not any(lk.active for lk in rt.lockbox.locks(datasource="pp"))
    assert list(rt.storage.list_keys(parallel.partial_prefix(task["id"]) + "/")) == []


def test_the_teardown_publishes_nothing_when_the_run_was_marked_failed(env):
    rt, spec, _ = env
    run, store = RunXComs(), StateStore()
    task, results = run_until_merged(run, spec, store)
    run.values[(MERGE, "return_value")] = results
    run.run_state = "failed"  # a person marked the run failed while the teardown was still to run
    with pytest.raises(AirflowFailException):
        teardown(run, task).execute(ctx(run, "g.publish_release"))
    assert rt.store.used_segments("pp") == [] and rt.store.get_task(task["id"]).status == "FAILED"
    assert not any(lk.active for lk in rt.lockbox.locks(datasource="pp"))
