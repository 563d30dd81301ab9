"""What the crash-injection test's child processes run (importable by a forkserver's children)."""

from __future__ import annotations

from typing import Any


def work(op: str, db_url: str, deep: str, work_dir: str, payload: dict[str, Any], ready: Any) -> None:
    """Run one operation against the shared metadata DB and deep storage; the parent SIGKILLs us at a random
    moment after ``ready`` is set."""
    from druidflow.tasks import compact, index, kill
    from druidflow.tasks.runtime import Runtime

    rt = Runtime.from_urls(db_url, deep, work_dir, migrate=False)
    if op == "publish":
        task = index.submit(payload["task"], rt)
        plan = index.IndexPlan.model_validate(payload["plan"])
        results = [index.BuildResult.model_validate(r) for r in payload["results"]]
        ready.set()
        index.publish(task, plan, results, rt)
        return
    ready.set()
    if op == "index":
        index.run(payload["spec"], rt)
    elif op == "compact":
        compact.run(payload["spec"], rt)
    elif op == "kill":
        kill.run(payload["spec"], rt, dry_run=False)
    else:  # pragma: no cover - a typo in the test
        raise ValueError(op)
