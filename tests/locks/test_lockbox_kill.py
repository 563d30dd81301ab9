"""A worker killed with SIGKILL while holding a lock: once its lease runs out, another task gets the interval."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from druidflow.locks import TaskLockbox
from tests.locks.lockbox_workers import hold_forever

LEASE = 1.0
INTERVAL = "2024-01-01/2024-01-02"


@pytest.mark.slow
def test_killed_worker_loses_its_lock_when_the_lease_runs_out(db_url):
    box = TaskLockbox(db_url, lease_seconds=LEASE)
    box.create_tables()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    worker = ctx.Process(target=hold_forever, args=(db_url, "doomed", "wiki", INTERVAL, LEASE, ready), daemon=True)
    worker.start()
    try:
        assert ready.wait(60), "the worker never got its lock"
        time.sleep(1.5 * LEASE)  # longer than the lease: only its heartbeats keep the lock
        blocked = box.try_lock("next", "next", "wiki", INTERVAL, "EXCLUSIVE", priority=50)
        assert not blocked.acquired and [lk.task_id for lk in blocked.conflicts] == ["doomed"]

        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        assert worker.exitcode == -signal.SIGKILL
        killed_at = time.monotonic()

        got = box.lock("next", "next", "wiki", INTERVAL, "EXCLUSIVE", priority=50, timeout=10 * LEASE)
        waited = time.monotonic() - killed_at
        assert got.acquired, got
        assert waited < LEASE + 2  # freed by the lease, not by luck or a long timeout
        states = {lk.task_id: lk.state for lk in box.locks("wiki")}
        assert states == {"doomed": "expired", "next": "active"}
        assert [e["event"] for e in box.events(task_id="doomed")] == ["acquire", "expire"]
    finally:
        if worker.is_alive():
            worker.kill()
        box.engine.dispose()
