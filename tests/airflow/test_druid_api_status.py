"""The Druid API's pure parts: the task type -> DAG table and run ids, and a task's status from its row and run."""

from __future__ import annotations

import json

from druidflow.airflow.druid_api.task_dags import TASK_DAGS, run_id_for, task_dag
from druidflow.airflow.druid_api.task_status import RunInfo, druid_state, status_plus
from druidflow.metadata.records import TaskRecord, task_status_payload


def _record(status: str, error: str | None = None) -> TaskRecord:
    return TaskRecord(
        id="t1", type="index", data_source="wiki", group_id="t1", status=status, active=status == "RUNNING",
        payload={"type": "index"}, status_payload=json.loads(task_status_payload("t1", status, -1 if status == "RUNNING" else 5, error)),
        report=None, error_msg=error, created_date="2024-01-01T00:00:00.000Z", updated_date="2024-01-01T00:00:00.000Z",
    )


def _run(state: str) -> RunInfo:
    task = {"type": "index", "id": "t1", "spec": {"dataSchema": {"dataSource": "wiki"}}}
    return RunInfo(dag_id="druidflow_index", run_id="t1", state=state, task=task,
                   queued_at="2024-01-01T00:00:00.000Z", start_ms=1000, end_ms=4000 if state in ("success", "failed") else None)


def test_every_task_type_has_a_dag_and_kill_deletes_unless_the_context_asks_for_a_dry_run():
    assert task_dag("index").dag_id == "druidflow_index"
    assert task_dag("index_parallel").dag_id == "druidflow_index_parallel"
    assert task_dag("compact").dag_id == "druidflow_compact" and task_dag("hadoop") is None
    kill = {"type": "kill", "dataSource": "wiki", "interval": "2024-01-01/P1D"}
    assert TASK_DAGS["kill"].conf(kill) == {"spec": kill, "confirm": True}
    dry = {**kill, "context": {"dryRun": True}}
    assert TASK_DAGS["kill"].conf(dry)["confirm"] is False
    assert TASK_DAGS["index"].conf({"type": "index"}) == {"spec": {"type": "index"}}


def test_run_id_is_the_task_id_when_airflow_accepts_it_else_a_stable_digest():
    druid_id = "index_wikipedia_glfmjnde_2026-11-23T02:56:54.418Z"
    assert run_id_for(druid_id) == druid_id
    odd = "my task/with spaces"
    assert run_id_for(odd) == run_id_for(odd) != odd and run_id_for(odd).startswith("druid_")
    assert run_id_for("x" * 300) != "x" * 300


def test_a_run_without_a_row_is_pending_then_running_and_a_failed_one_failed():
    queued = status_plus(None, _run("queued"), False)
    assert (queued["status"], queued["runnerStatusCode"], queued["dataSource"], druid_state(queued)) == ("RUNNING", "PENDING", "wiki", "pending")
    assert status_plus(None, _run("running"), False)["runnerStatusCode"] == "RUNNING"
    failed = status_plus(None, _run("failed"), False)
    assert failed["status"] == "FAILED" and "failed before the task started" in failed["errorMsg"]
    assert failed["duration"] == 3000 and druid_state(failed) == "complete"


def test_a_running_row_whose_run_ended_is_failed_and_one_without_a_lock_is_waiting():
    ended = status_plus(_record("RUNNING"), _run("failed"), False)
    assert ended["status"] == ended["statusCode"] == "FAILED" and "ended failed" in ended["errorMsg"]
    assert status_plus(_record("RUNNING"), _run("running"), False)["runnerStatusCode"] == "WAITING"
    holding = status_plus(_record("RUNNING"), _run("running"), True)
    assert holding["runnerStatusCode"] == "RUNNING" and druid_state(holding) == "running"
    done = status_plus(_record("FAILED", "boom"), _run("failed"), False)
    assert done["errorMsg"] == "boom" and done["duration"] == 5


def test_the_engines_task_registry_extends_the_table_where_it_exists():
    try:
        from druidflow.tasks.registry import TASK_TYPES
    except ImportError:  # the tree has no registry yet: the built-in rows are the table
        TASK_TYPES = {}
    for name, entry in TASK_TYPES.items():
        assert task_dag(name).dag_id == entry.dag_id
    assert set(TASK_DAGS) >= {"index", "index_parallel", "compact", "kill"} | set(TASK_TYPES)
