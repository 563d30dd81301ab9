"""Which DAG runs a Druid task type submitted to ``POST /druid/indexer/v1/task``, and the run's ``conf``.

One row per task type: the built-in rows below, plus every type of the engine's task registry
(``druidflow.tasks.registry.TASK_TYPES``, type -> DAG id) where it exists, so a new task family (append, merge,
same_interval_merge, convert, ...) is served as soon as it is registered and its DAG is deployed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _spec_conf(task: dict[str, Any]) -> dict[str, Any]:
    return {"spec": task}


def _kill_conf(task: dict[str, Any]) -> dict[str, Any]:
    # The kill DAG dry-runs unless confirmed (a safety for people at the trigger form); a kill task submitted
    # to the Overlord API deletes, as Druid's does, unless its context asks for a dry run.
    context = given if isinstance(given := task.get("context"), dict) else {}
    dry_run = context.get("dryRun") in (True, "true", "True")
    return {"spec": task, "confirm": not dry_run}


@dataclass(frozen=True)
class TaskDag:
    """The DAG that runs one Druid task type, and how a task JSON becomes that DAG's run ``conf``."""

    dag_id: str
    conf: Callable[[dict[str, Any]], dict[str, Any]] = _spec_conf


#: How a task type's run conf differs from ``{"spec": task}``.
_CONFS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"kill": _kill_conf}


def _registered() -> dict[str, TaskDag]:
    """The engine's task registry (type -> DAG id), where the tree has one: every registered type is served."""
    try:
        from druidflow.tasks.registry import TASK_TYPES
    except ImportError:
        return {}
    return {name: TaskDag(t.dag_id, _CONFS.get(name, _spec_conf)) for name, t in TASK_TYPES.items()}


#: Druid task type -> the DAG running it.
TASK_DAGS: dict[str, TaskDag] = {
    "index": TaskDag("druidflow_index"),
    "index_parallel": TaskDag("druidflow_index_parallel"),
    "compact": TaskDag("druidflow_compact"),
    "kill": TaskDag("druidflow_kill", _kill_conf),
    **_registered(),
}

#: Coordinator writes (mark used/unused, retention rules) need the right to trigger this DAG, which makes the
#: same changes on a schedule.
SEGMENT_ADMIN_DAG = "druidflow_retention"

# Airflow's default [scheduler] allowed_run_id_pattern, and the length of dag_run.run_id.
_RUN_ID_OK = re.compile(r"^[A-Za-z0-9_.~:+-]+$")
_RUN_ID_MAX = 250


def task_dag(task_type: str) -> TaskDag | None:
    return TASK_DAGS.get(task_type)


def dag_ids() -> list[str]:
    return sorted({t.dag_id for t in TASK_DAGS.values()})


def run_id_for(task_id: str) -> str:
    """The DAG run id of a submitted Druid task: the task id itself when Airflow accepts it as a run id (so the
    run is easy to find in the UI), else a stable digest of it."""
    if len(task_id) <= _RUN_ID_MAX and _RUN_ID_OK.match(task_id):
        return task_id
    return "druid_" + hashlib.sha256(task_id.encode()).hexdigest()[:40]
