"""Run any supported Druid task spec in-process, choosing the task module by the spec's ``type``."""

from __future__ import annotations

from typing import Any

from druidflow.exceptions import SpecError
from druidflow.specs.tasks import parse_task
from druidflow.tasks.runtime import Runtime

# type -> "module:function" taking (task, runtime) and returning a JSON-serialisable report.
RUNNERS = {
    "index": "druidflow.tasks.index:run",
    "index_parallel": "druidflow.tasks.index:run",
    "kill": "druidflow.tasks.kill:run",
    "compact": "druidflow.tasks.compact:run",
}


def run_task(spec: Any, rt: Runtime) -> dict[str, Any]:
    """Validate ``spec`` (a dict or JSON text), run it, and return its report (Druid's shape)."""
    task = parse_task(spec)
    target = RUNNERS.get(task.type)
    if target is None:
        raise SpecError("type", task.type, f"this task type cannot be run yet; supported: {', '.join(sorted(RUNNERS))}")
    module_name, func_name = target.split(":")
    import importlib

    runner = getattr(importlib.import_module(module_name), func_name)
    result = runner(task, rt)
    return result.model_dump() if hasattr(result, "model_dump") else result
