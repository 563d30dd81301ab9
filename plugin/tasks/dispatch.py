"""Run any registered Druid task spec in-process, choosing its definition by the spec's ``type``."""

from __future__ import annotations

from typing import Any

from druidflow.specs.tasks import parse_task
from druidflow.tasks.runtime import Runtime


def run_task(spec: Any, rt: Runtime, **options: Any) -> dict[str, Any]:
    """Validate ``spec`` (a dict or JSON text), run it, and return its report (Druid's shape).

    The task type is looked up in :mod:`druidflow.tasks.registry`; ``options`` go to the type's ``run`` (e.g.
    ``dry_run`` for ``kill``).
    """
    from druidflow.tasks.registry import definition

    task = parse_task(spec)
    result = definition(task.type).run(task, rt, **options)
    return result.model_dump() if hasattr(result, "model_dump") else result
