"""The one list of task types Druidflow runs: type → spec model, engine module, Airflow DAG id.

The CLI (``druidflow run``), :mod:`druidflow.tasks.dispatch`, the generic Airflow operators and the Overlord API all
look a task type up here. Importing this module imports no engine module: each definition is loaded on first use.

Adding a task type: write its engine module with a :class:`~druidflow.tasks.protocol.TaskDefinition` named
``DEFINITION``, add its spec model to :mod:`druidflow.specs.tasks`, and add one :class:`TaskType` line below
(plus a trigger form and a DAG file for Airflow, see the README).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from druidflow.exceptions import SpecError

if TYPE_CHECKING:
    from druidflow.tasks.protocol import TaskDefinition


@dataclass(frozen=True)
class TaskType:
    """One registered task type."""

    type: str
    spec_model: str
    """``module:Class`` of the spec model (in :mod:`druidflow.specs.tasks`)."""
    engine_module: str
    """The engine module; its ``DEFINITION`` is the type's :class:`~druidflow.tasks.protocol.TaskDefinition`."""
    dag_id: str
    """The Airflow DAG that runs one task of this type from a trigger form or a whole task JSON."""


_SPECS = "druidflow.specs.tasks"

TASK_TYPES: dict[str, TaskType] = {
    t.type: t
    for t in (
        TaskType("index", f"{_SPECS}:IndexTask", "druidflow.tasks.index", "druidflow_index"),
        TaskType("index_parallel", f"{_SPECS}:IndexTask", "druidflow.tasks.parallel", "druidflow_index_parallel"),
        TaskType("index_hadoop", f"{_SPECS}:HadoopIndexTask", "druidflow.tasks.hadoop", "druidflow_index_hadoop"),
        TaskType("compact", f"{_SPECS}:CompactTask", "druidflow.tasks.compact", "druidflow_compact"),
        TaskType("kill", f"{_SPECS}:KillTask", "druidflow.tasks.kill", "druidflow_kill"),
        TaskType("append", f"{_SPECS}:AppendTask", "druidflow.tasks.merge", "druidflow_append"),
        TaskType("merge", f"{_SPECS}:MergeTask", "druidflow.tasks.merge", "druidflow_merge"),
        TaskType("same_interval_merge", f"{_SPECS}:SameIntervalMergeTask", "druidflow.tasks.merge", "druidflow_same_interval_merge"),
        TaskType("convert_segment", f"{_SPECS}:ConvertSegmentTask", "druidflow.tasks.convert", "druidflow_convert"),
        TaskType("version_converter", f"{_SPECS}:ConvertSegmentTask", "druidflow.tasks.convert", "druidflow_convert"),
    )
}


def task_type(name: str) -> TaskType:
    """The registration of ``name``; a :class:`SpecError` on ``type`` listing the supported ones otherwise."""
    entry = TASK_TYPES.get(name) if isinstance(name, str) else None
    if entry is None:
        raise SpecError("type", name, f"this task type cannot be run; supported: {', '.join(TASK_TYPES)}")
    return entry


def definition(name: str) -> TaskDefinition:
    """The :class:`~druidflow.tasks.protocol.TaskDefinition` of task type ``name`` (its module imported now)."""
    return importlib.import_module(task_type(name).engine_module).DEFINITION


def spec_model(name: str) -> type:
    module, cls = task_type(name).spec_model.split(":")
    return getattr(importlib.import_module(module), cls)


def dag_id(name: str) -> str:
    return task_type(name).dag_id
