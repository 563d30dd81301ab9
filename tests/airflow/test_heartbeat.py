"""The lease heartbeat thread: beats while the block runs, survives transient errors, stops on terminal ones."""

from __future__ import annotations

import threading
import time

import pytest

from druidflow.airflow.heartbeat import LeaseHeartbeat
from druidflow.exceptions import LockRevokedError


def test_beats_while_the_block_runs_and_stops_after():
    calls = []
    with LeaseHeartbeat(lambda: calls.append(time.monotonic()), interval_s=0.02) as beat:
        time.sleep(0.2)
    n = len(calls)
    assert n >= 3
    time.sleep(0.1)
    assert len(calls) == n  # no beat after the block
    assert beat.beats == n
    beat.check()  # nothing to raise


def test_transient_errors_do_not_stop_the_beating():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("database went away")

    with LeaseHeartbeat(flaky, interval_s=0.02) as beat:
        time.sleep(0.25)
    assert len(calls) > 3
    assert beat.error is None


def test_a_revoked_lock_stops_the_beating_and_is_reraised():
    calls = []

    def revoked():
        calls.append(1)
        raise LockRevokedError("task t on wiki: lock 2024-01-01/2024-01-02 was revoked")

    with LeaseHeartbeat(revoked, interval_s=0.02, stop_work=False) as beat:
        time.sleep(0.2)
    assert len(calls) == 1
    assert beat.revoked
    with pytest.raises(LockRevokedError, match="revoked"):
        beat.check()


def test_a_revoked_lock_stops_the_work_early():
    def revoked():
        raise LockRevokedError("task t on wiki: lock 2024-01-01/2024-01-02 was revoked")

    steps = 0
    started = time.monotonic()
    with pytest.raises(LockRevokedError, match="revoked"):
        with LeaseHeartbeat(revoked, interval_s=0.05):
            while time.monotonic() - started < 60:  # a long build, one batch at a time
                steps += 1
                time.sleep(0.01)
    assert time.monotonic() - started < 30 and steps > 0


def test_an_interruption_never_lands_after_the_block():
    def revoked():
        raise LockRevokedError("revoked")

    for _ in range(20):
        try:
            with LeaseHeartbeat(revoked, interval_s=0.001) as beat:
                pass
        except LockRevokedError:
            pass  # the revocation arrived as the block ended: reported as such, never as an internal signal
        time.sleep(0.005)  # a late interruption would surface here
        assert not beat._thread.is_alive()


def test_the_engine_heartbeat_reports_a_revoked_lock(sqlite_url):
    from druidflow.locks import TaskLockbox

    box = TaskLockbox(sqlite_url)
    box.create_tables()
    assert box.try_lock("low", datasource="wiki", interval="2024-01-01/2024-01-02", priority=10).acquired
    assert box.heartbeat("low", raise_revoked=True) == 1
    assert box.try_lock("high", datasource="wiki", interval="2024-01-01/2024-01-02", priority=90).acquired
    with pytest.raises(LockRevokedError, match="revoked"):
        box.heartbeat("low", raise_revoked=True)


def test_the_thread_is_a_daemon_and_is_joined():
    with LeaseHeartbeat(lambda: None, interval_s=0.05, name="x") as beat:
        assert beat._thread.daemon
        assert beat._thread.is_alive()
    assert not beat._thread.is_alive()
    assert not any(t.name == "druidflow-heartbeat-x" for t in threading.enumerate())


def test_rejects_a_non_positive_interval():
    with pytest.raises(ValueError):
        LeaseHeartbeat(lambda: None, interval_s=0)
