"""A Druid task's status, from its row in ``druidflow_tasks`` and the Airflow run that carries it.

The row is written by the run's first step, so a task just submitted has a run but no row yet (Druid's
``PENDING``); a row still RUNNING whose run has ended was stopped from outside (a shutdown, a run marked failed)
and is reported FAILED, as Druid reports a task whose process died.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from druidflow.metadata.records import TaskRecord

NO_LOCATION = {"host": None, "port": -1, "tlsPort": -1}
TERMINAL_RUN_STATES = ("success", "failed")


@dataclass(frozen=True)
class RunInfo:
    """What the Druid API needs of an Airflow DAG run."""

    dag_id: str
    run_id: str
    state: str  # queued | running | success | failed
    task: dict[str, Any]  # the submitted task JSON (conf["spec"])
    queued_at: Optional[str] = None  # ISO instant
    end_ms: Optional[int] = None
    start_ms: Optional[int] = None

    @property
    def task_id(self) -> str:
        return str(self.task.get("id", ""))


def status_plus(record: Optional[TaskRecord], run: Optional[RunInfo], holds_lock: bool) -> dict[str, Any]:
    """Druid's ``TaskStatusPlus`` (the body of ``/task/{id}/status`` and each item of ``/tasks``)."""
    if record is not None:
        status = dict(record.status_plus())
        if record.status == "RUNNING":
            if run is not None and run.state in TERMINAL_RUN_STATES:
                status.update(
                    statusCode="FAILED",
                    status="FAILED",
                    runnerStatusCode="NONE",
                    errorMsg=status.get("errorMsg")
                    or f"the Airflow run {run.dag_id}/{run.run_id} ended {run.state} before the task finished",
                    duration=_duration(run),
                )
            else:
                status["runnerStatusCode"] = "RUNNING" if holds_lock else "WAITING"
        return status
    if run is None:
        raise ValueError("a task status needs a task row or a run")
    task = run.task
    state, runner, error = "RUNNING", "PENDING", None
    if run.state == "running":
        runner = "RUNNING"
    elif run.state in TERMINAL_RUN_STATES:
        # The run ended before its first step recorded the task (it failed there, or was stopped early).
        state, runner = ("SUCCESS" if run.state == "success" else "FAILED"), "NONE"
        if state == "FAILED":
            error = f"the Airflow run {run.dag_id}/{run.run_id} failed before the task started; see its logs"
    return {
        "id": run.task_id,
        "groupId": task.get("groupId") or run.task_id,
        "type": task.get("type"),
        "createdTime": run.queued_at,
        "queueInsertionTime": run.queued_at,
        "statusCode": state,
        "status": state,
        "runnerStatusCode": runner,
        "duration": _duration(run) if state != "RUNNING" else -1,
        "location": NO_LOCATION,
        "dataSource": data_source_of(task),
        "errorMsg": error,
    }


def druid_state(status: dict[str, Any]) -> str:
    """The ``state`` filter of ``/tasks`` a status belongs to: running, waiting, pending or complete."""
    if status["status"] != "RUNNING":
        return "complete"
    return {"PENDING": "pending", "WAITING": "waiting"}.get(status["runnerStatusCode"], "running")


def data_source_of(task: dict[str, Any]) -> Optional[str]:
    """The dataSource of a task JSON (top level, or ``spec.dataSchema`` of an index task)."""
    if isinstance(task.get("dataSource"), str):
        return task["dataSource"]
    for container in ("spec", "ingestionSpec"):
        schema = (task.get(container) or {}).get("dataSchema") if isinstance(task.get(container), dict) else None
        if isinstance(schema, dict) and isinstance(schema.get("dataSource"), str):
            return schema["dataSource"]
    return None


def _duration(run: RunInfo) -> int:
    if run.start_ms is None or run.end_ms is None:
        return -1
    return max(0, run.end_ms - run.start_ms)
