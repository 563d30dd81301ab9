"""A worker killed with SIGKILL while holding a lock: once its lease runs out, another task gets the interval.

The test waits for conditions, never for fixed times: on a loaded machine a sleep of "a little longer than the
lease" says nothing about where the worker's heartbeats or the lockbox's polls have got to. What it asserts is
read from the lock rows and the audit trail, whose times the lockbox itself stamped.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from druidflow.intervals import now_ms, parse_instant
from druidflow.locks import TaskLockbox
from tests.locks.lockbox_workers import hold_forever

LEASE = 2.0
LEASE_MS = int(LEASE * 1000)
INTERVAL = "2024-01-01/2024-01-02"
# How long a condition may take to come true on a loaded 2-core machine; only a failure ever waits this long.
DEADLINE_S = 60.0
# What a loaded machine may add to the lockbox's poll once the lease has run out (far below DEADLINE_S, so a
# lock freed only by giving up on the wait would still fail the test).
SLACK_S = 10.0


def doomed_lock(box: TaskLockbox):
    [lock] = box.locks("wiki", task_id="doomed")
    return lock


@pytest.mark.slow
def test_killed_worker_loses_its_lock_when_the_lease_runs_out(db_url):
    box = TaskLockbox(db_url, lease_seconds=LEASE)
    box.create_tables()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    worker = ctx.Process(target=hold_forever, args=(db_url, "doomed", "wiki", INTERVAL, LEASE, ready), daemon=True)
    worker.start()
    try:
        assert ready.wait(DEADLINE_S), "the worker never got its lock"
        first_expiry = doomed_lock(box).lease_expires_ms

        # Past the lease it was granted, only its heartbeats keep the lock: the lease has moved on and it still blocks.
        deadline = time.monotonic() + DEADLINE_S
        while now_ms() <= first_expiry + LEASE_MS // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert now_ms() > first_expiry
        held = doomed_lock(box)
        assert held.state == "active" and held.lease_expires_ms > first_expiry
        blocked = box.try_lock("next", "next", "wiki", INTERVAL, "EXCLUSIVE", priority=50)
        assert not blocked.acquired and [lk.task_id for lk in blocked.conflicts] == ["doomed"]

        os.kill(worker.pid, signal.SIGKILL)
        worker.join(DEADLINE_S)
        assert worker.exitcode == -signal.SIGKILL
        killed_at = now_ms()

        got = box.lock("next", "next", "wiki", INTERVAL, "EXCLUSIVE", priority=50, timeout=DEADLINE_S)
        assert got.acquired, got
        assert now_ms() - killed_at < (LEASE + box.max_poll_seconds + SLACK_S) * 1000
        states = {lk.task_id: lk.state for lk in box.locks("wiki")}
        assert states == {"doomed": "expired", "next": "active"}
        assert [e["event"] for e in box.events(task_id="doomed")] == ["acquire", "expire"]
        # Freed by the lease, not by luck: the last heartbeat granted at most one lease beyond the kill, and the
        # interval changed hands only once that lease had run out.
        expiry = doomed_lock(box).lease_expires_ms
        assert expiry <= killed_at + LEASE_MS
        [acquired] = [e for e in box.events(task_id="next") if e["event"] == "acquire"]
        assert parse_instant(acquired["at"]) >= expiry
    finally:
        if worker.is_alive():
            worker.kill()
        box.engine.dispose()
