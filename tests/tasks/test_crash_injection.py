"""Crash injection: a child process is SIGKILLed at a random moment while it builds, publishes, compacts or kills,
on a shared SQLite metadata DB and local deep storage. After every crash:

* every used segment's file exists and reads back with the rows its metadata says;
* no chunk is partially visible, and the visible rows' count metric sums to the input rows;
* a retry of the operation completes;
* the orphan sweep (deleting, no grace period) removes nothing a used segment needs.

Children fork from a forkserver that has Druidflow imported, so a trial costs milliseconds to start.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from druidflow.query import visible_rows
from druidflow.tasks import compact, index, kill
from druidflow.tasks.orphans import find_orphans, sweep_orphans
from druidflow.tasks.runtime import Runtime
from tests.index_specs import index_task

sys.path.insert(0, str(Path(__file__).parent))
from crash_workers import work

DS = "crash"
INTERVAL = "2024-01-01/2024-01-04"
ROWS = 240
TRIALS = 20


def input_rows(seed: int) -> str:
    rnd = random.Random(seed)
    return "".join(
        json.dumps({"ts": f"2024-01-0{1 + i % 3}T{rnd.randrange(24):02d}:{rnd.randrange(60):02d}:00Z", "d": f"k{rnd.randrange(50)}"}) + "\n"
        for i in range(ROWS)
    )


def index_spec(task_id: str, seed: int) -> dict:
    return index_task(
        data_source=DS, task_id=task_id, data=input_rows(seed), query_granularity="NONE", rollup=False, intervals=[INTERVAL],
        tuning={"partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 30}},
    )


def compact_spec(task_id: str, rows_per_segment: int) -> dict:
    return {
        "type": "compact",
        "id": task_id,
        "dataSource": DS,
        "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": INTERVAL}},
        "tuningConfig": {"type": "index", "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": rows_per_segment}},
    }


def kill_spec(task_id: str) -> dict:
    return {"type": "kill", "id": task_id, "dataSource": DS, "interval": INTERVAL}


def check(rt: Runtime, where: str) -> None:
    """Every invariant that must hold whatever moment the crash hit."""
    used = [s for s in rt.store.used_segments(DS) if not s.is_tombstone]
    for s in used:
        with rt.storage.open_local(s.load_spec) as path:
            assert pq.read_metadata(path).num_rows == s.num_rows, f"{where}: {s.id} reads back wrong"
    visible = rt.store.visible_segments(DS)
    sets: dict[tuple, set[int]] = defaultdict(set)
    cores: dict[tuple, int] = {}
    for s in visible:
        key = (s.interval, s.version)
        sets[key].add(s.partition_num)
        cores[key] = max(cores.get(key, 0), s.shard_spec.core_partitions)
    for key, parts in sets.items():
        assert set(range(cores[key])) <= parts, f"{where}: chunk {key} is partially visible ({sorted(parts)})"
    table = pa.Table.from_batches(list(visible_rows(rt.store, rt.storage, DS)))
    assert pc.sum(table["count"]).as_py() == ROWS, f"{where}: the count metric does not sum to the input rows"


def sweep_and_check(rt: Runtime, where: str) -> None:
    needed = {rt.storage.load_path(s.load_spec) for s in rt.store.used_segments(DS) if not s.is_tombstone}
    assert not needed & {o.path for o in find_orphans(rt, DS)}, f"{where}: the sweep lists a used segment's file"
    sweep_orphans(rt, DS, delete=True, grace_seconds=0)
    check(rt, f"{where}, after the orphan sweep")


class Crasher:
    def __init__(self, db_url: str, deep: str, work_dir: Path) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["druidflow.tasks.index", "druidflow.tasks.compact", "druidflow.tasks.kill", "crash_workers"])
        self.args = (db_url, deep, str(work_dir))
        self.durations: dict[str, float] = defaultdict(lambda: 0.5)
        self.killed: dict[str, int] = defaultdict(int)

    def run(self, op: str, payload: dict, rnd: random.Random) -> bool:
        """Run ``op`` in a child and SIGKILL it after a random delay; True if it was killed before finishing."""
        ready = self.ctx.Event()
        child = self.ctx.Process(target=work, args=(op, *self.args, payload, ready), daemon=True)
        child.start()
        assert ready.wait(120), f"{op}: the child never started"
        started = time.monotonic()
        child.join(rnd.uniform(0, 1.2 * self.durations[op]))
        if child.exitcode is None:
            os.kill(child.pid, signal.SIGKILL)
            child.join(60)
            if child.exitcode == -signal.SIGKILL:
                self.killed[op] += 1
                return True
            # Otherwise it finished between the check and the signal: a completed run, judged below.
        assert child.exitcode == 0, f"{op}: the child failed on its own (exit code {child.exitcode})"
        self.durations[op] = max(self.durations[op] * 0.5, time.monotonic() - started)
        return False


@pytest.mark.slow
def test_sigkill_at_random_points_never_loses_or_changes_published_data(sqlite_url, tmp_path):
    deep = str(tmp_path / "deep")
    rt = Runtime.from_urls(sqlite_url, deep, tmp_path / "work")
    index.run(index_spec("index_seed", 0), rt)
    check(rt, "seed")
    crasher = Crasher(sqlite_url, deep, tmp_path / "work")
    rnd = random.Random(11)
    n = 0

    def retried(op: str, dead_task: str, retry) -> None:
        rt.lockbox.force_release(dead_task, "crash-test", "the process was SIGKILLed")  # as its lease running out
        check(rt, f"{op} {dead_task} after the crash")
        retry()
        check(rt, f"{op} {dead_task} after the retry")
        sweep_and_check(rt, f"{op} {dead_task}")

    for _ in range(TRIALS):  # build (and publish) of a whole index task
        n += 1
        task_id = f"index_{n}"
        crasher.run("index", {"spec": index_spec(task_id, n)}, rnd)
        retried("index", task_id, lambda: index.run(index_spec(f"{task_id}_retry", n), rt))

    for _ in range(TRIALS):  # the publish step alone, retried by the same task as an Airflow retry would
        n += 1
        task = index.submit(index_spec(f"index_{n}", n), rt)
        index.acquire_locks(task, rt)
        plan = index.determine_partitions(task, rt)
        results = [index.build_units(task, plan.build_units, rt)]
        payload = {"task": task.model_dump(), "plan": plan.model_dump(), "results": [r.model_dump() for r in results]}
        crasher.run("publish", payload, rnd)
        check(rt, f"publish {task.task_id} after the crash")
        index.publish(task, plan, results, rt)
        index.release(task.task_id, rt)
        check(rt, f"publish {task.task_id} after the retry")
        sweep_and_check(rt, f"publish {task.task_id}")

    for i in range(TRIALS):  # compaction, alternating the partitioning so each one rewrites every chunk
        n += 1
        task_id = f"compact_{n}"
        crasher.run("compact", {"spec": compact_spec(task_id, 20 + 10 * (i % 2))}, rnd)
        retried("compact", task_id, lambda: compact.run(compact_spec(f"{task_id}_retry", 25 + 10 * (i % 2)), rt))

    for _ in range(TRIALS):  # kill of the unused segments (a fresh overwrite first makes some)
        n += 1
        index.run(index_spec(f"index_{n}", n), rt)
        task_id = f"kill_{n}"
        crasher.run("kill", {"spec": kill_spec(task_id)}, rnd)
        retried("kill", task_id, lambda: kill.run(kill_spec(f"{task_id}_retry"), rt, dry_run=False))
        assert rt.store.unused_segments(DS) == []

    # The random moments really fell inside the work, not only before or after it.
    for op in ("index", "publish", "compact", "kill"):
        assert crasher.killed[op] >= TRIALS // 4, (op, dict(crasher.killed))
