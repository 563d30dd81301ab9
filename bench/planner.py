"""The auto-compaction planner's own cost: one plan over a dataSource of 1M used segments (about 160k hourly chunks
of 5 partitions, every fourth overwritten) with a real lockbox holding a few locks.

The used segments come from memory, so the figure is the planner's (timeline, grouping, verdicts); reading them
from the metadata store is ``bench.metadata``'s figure. ``run(url) -> dict`` is what ``bench/run.py`` calls;
``python -m bench.planner [URL]`` prints the figures (a temporary SQLite file without a URL).
"""

from __future__ import annotations

import sys
import tempfile

from bench.cpu import load_average, measured
from bench.metadata import make_segments
from druidflow.compaction.config import load_settings
from druidflow.compaction.planner import plan_auto_compaction
from druidflow.intervals import MS_DAY, Interval
from druidflow.locks.lockbox import TaskLockbox
from druidflow.metadata.store import MetadataStore

SEGMENTS = 1_000_000
TARGET_S = 5.0


class _InMemoryUsed:
    """The real store for tasks, the prepared list for used segments."""

    def __init__(self, store: MetadataStore, segments: list) -> None:
        self._store, self._segments = store, segments

    def used_segments(self, data_source: str) -> list:
        return self._segments

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def run(url: str) -> dict:
    segments = make_segments(SEGMENTS)
    store = MetadataStore(url)
    store.migrate()
    lockbox = TaskLockbox(url)
    first = segments[0].interval.start
    for i in range(5):
        task_id = f"index_bench_{i}"
        store.insert_task(task_id, "index", "bench", task_id, {"type": "index"})
        iv = Interval(first + i * 400 * MS_DAY // 24, first + i * 400 * MS_DAY // 24 + MS_DAY)
        assert lockbox.try_lock(task_id, datasource="bench", interval=iv, priority=50).acquired
    settings = load_settings({"compactionConfigs": [{"dataSource": "bench", "skipOffsetFromLatest": "P1D"}], "maxCompactionTaskSlots": 10})
    try:
        load = load_average()
        with measured() as cpu:  # the planner works in this process (the lockbox's reads are a few rows)
            plan = plan_auto_compaction(settings, _InMemoryUsed(store, segments), lockbox)
        plan_s = round(cpu.wall_s, 3)
    finally:
        store.engine.dispose()
    return {
        "plan_1M_segments_s": plan_s,
        "plan_target_s": TARGET_S,
        "plan_ratio_to_target": round(plan_s / TARGET_S, 2),
        "plan_1M_segments_cpu_s": round(cpu.total_s, 3),
        "plan_cpu_ratio_to_target": round(cpu.total_s / TARGET_S, 2),
        "load_average": load,
        "chunks_judged": len(plan.verdicts),
        "chunks_locked": plan.counts().get("locked", 0),
        "tasks_planned": len(plan.tasks),
    }


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="druidflow-bench-") as tmp:
        url = argv[0] if argv else f"sqlite:///{tmp}/metadata.db"
        for key, value in run(url).items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
