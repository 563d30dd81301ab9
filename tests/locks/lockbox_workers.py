"""Code that runs in spawned worker processes for the lockbox's multi-process tests (importable by the children)."""

from __future__ import annotations

import random
import time
import traceback
from collections import Counter
from typing import Any

import sqlalchemy as sa

from druidflow.exceptions import LockRevokedError
from druidflow.intervals import MS_DAY, Interval, format_instant, parse_instant
from druidflow.locks import TaskLockbox
from druidflow.metadata.tables import lock_events

DAY0 = parse_instant("2024-01-01")
SPANS = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 2), (1, 3), (2, 4), (0, 4)]
DATASOURCES = ["wiki", "koala"]

# (lock type, priority, group): None means the task's own group; a name is shared by tasks of every process,
# like the sub-tasks of one parallel task or Druid's appending tasks (a group has one priority).
PROFILES = [
    ("EXCLUSIVE", 0, None), ("EXCLUSIVE", 25, None), ("EXCLUSIVE", 50, None), ("EXCLUSIVE", 75, None),
    ("EXCLUSIVE", 50, "parallel-50"),
    ("SHARED", 25, None), ("SHARED", 50, None),
    ("REPLACE", 25, None), ("REPLACE", 50, None), ("REPLACE", 75, None),
    ("APPEND", 50, "appenders-50"), ("APPEND", 25, None), ("APPEND", 75, None),
]

published = sa.Table(
    "published_rows",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("dataSource", sa.String(64), nullable=False),
    sa.Column("interval", sa.String(100), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
)


class Abort(Exception):
    """Raised inside a critical section on purpose: what it wrote must roll back."""


def span_interval(span: tuple[int, int]) -> Interval:
    return Interval(DAY0 + span[0] * MS_DAY, DAY0 + span[1] * MS_DAY)


def hammer(url: str, worker: int, seconds: float, seed: int, barrier: Any, results: Any) -> None:
    """Acquire, preempt, publish and release at random until ``seconds`` have passed; report what happened."""
    stats: Counter[str] = Counter()
    landed: list[tuple[str, str, str]] = []
    try:
        box = TaskLockbox(url, lease_seconds=120)
        rng = random.Random(seed)
        barrier.wait(120)
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
            task = f"w{worker}-{n}"
            lock_type, priority, group = rng.choice(PROFILES)
            ds = rng.choice(DATASOURCES)
            spans = rng.sample(SPANS, k=rng.choice([1, 1, 2]))
            held = []
            for span in spans:
                iv = span_interval(span)
                result = box.lock(task, group or task, ds, iv, lock_type, priority, timeout=rng.choice([0, 0.05, 0.2]))
                if result.acquired:
                    held.append(iv)
                    continue
                stats["lock revoked" if result.revoked else "lock unavailable"] += 1
                break
            if held:
                stats["locks acquired"] += len(held)
                if rng.random() < 0.3:
                    box.heartbeat(task)
                time.sleep(rng.uniform(0, 0.03))  # the work, during which a higher priority may preempt us
                try:
                    with box.critical_section(task, held, datasource=ds) as cs:
                        for iv in held:
                            lock = cs.lock_for(iv)
                            cs.connection.execute(
                                sa.insert(published).values(task_id=task, dataSource=ds, interval=str(iv), version=lock.version)
                            )
                            cs.connection.execute(
                                sa.insert(lock_events).values(
                                    at=format_instant(int(time.time() * 1000)), event="publish", task_id=task,
                                    group_id=lock.group_id, dataSource=ds, interval=str(iv), type=lock.type.value,
                                    version=lock.version, priority=lock.priority, posse_id=lock.posse_id,
                                )
                            )
                        if rng.random() < 0.05:
                            raise Abort
                    landed.extend((task, ds, str(iv)) for iv in held)
                    stats["publishes"] += 1
                except LockRevokedError:
                    stats["publishes refused"] += 1
                except Abort:
                    stats["publishes aborted"] += 1
            box.release_all(task)
        box.engine.dispose()
        results.put({"worker": worker, "stats": dict(stats), "landed": landed, "error": None})
    except BaseException:
        results.put({"worker": worker, "stats": dict(stats), "landed": landed, "error": traceback.format_exc()})


def hold_forever(url: str, task_id: str, datasource: str, interval: str, lease_seconds: float, ready: Any) -> None:
    """Take a lock, keep its lease alive from a heartbeat thread, tell the parent, and wait to be killed."""
    box = TaskLockbox(url, lease_seconds=lease_seconds)
    result = box.lock(task_id, task_id, datasource, interval, "EXCLUSIVE", 50, timeout=30)
    assert result.acquired, result
    with box.keep_alive(task_id, every=lease_seconds / 5):
        ready.set()
        time.sleep(3600)
