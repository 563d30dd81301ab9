"""Which priority and lock type a task asks for (§6.5, §6.6), and the pure grant rules."""

from __future__ import annotations

import pytest

from druidflow.exceptions import SpecError
from druidflow.intervals import Interval
from druidflow.locks import LockType, default_priority, lock_timeout_seconds, lock_type_for, task_priority
from druidflow.locks.rules import Posse, Request, can_coexist, decide

E, S, R, A = LockType.EXCLUSIVE, LockType.SHARED, LockType.REPLACE, LockType.APPEND


@pytest.mark.parametrize(
    ("task_type", "priority"),
    [
        ("realtime", 75), ("index_realtime", 75), ("index_kafka", 75), ("index_kinesis", 75),
        ("index", 50), ("index_parallel", 50), ("index_hadoop", 50),
        ("compact", 25), ("merge", 25), ("append", 25),
        ("kill", 0), ("convert_segment", 0), ("same_interval_merge", 0), ("archive", 0), ("noop", 0),
    ],
)
def test_default_priorities(task_type, priority):
    assert default_priority(task_type) == priority


def test_context_priority_overrides_the_default():
    assert task_priority("compact", {"priority": 90}) == 90
    assert task_priority("compact", {"priority": "10"}) == 10
    assert task_priority("compact", {}) == 25
    with pytest.raises(SpecError) as err:
        task_priority("index", {"priority": "urgent"})
    assert err.value.path == "context.priority"


@pytest.mark.parametrize(
    ("context", "append_mode", "expected"),
    [
        ({}, False, E),
        ({}, True, E),
        ({"useConcurrentLocks": True}, True, A),
        ({"useConcurrentLocks": True}, False, R),
        ({"useConcurrentLocks": "true", "taskLockType": "SHARED"}, False, R),  # concurrent locks win
        ({"taskLockType": "SHARED"}, True, S),
        ({"taskLockType": "SHARED"}, False, E),  # SHARED only in append mode
        ({"taskLockType": "APPEND"}, True, A),
        ({"taskLockType": "APPEND"}, False, E),  # APPEND only in append mode
        ({"taskLockType": "REPLACE"}, False, R),
        ({"taskLockType": "REPLACE"}, True, R),
        ({"taskLockType": "exclusive"}, True, E),
        ({"useSharedLock": True}, True, S),
        ({"useSharedLock": True}, False, E),
        ({"useSharedLock": True, "taskLockType": "EXCLUSIVE"}, True, E),  # taskLockType wins
    ],
)
def test_lock_type_for(context, append_mode, expected):
    assert lock_type_for(context, append_mode) is expected


@pytest.mark.parametrize(
    ("context", "path"),
    [({"taskLockType": "WRITE"}, "context.taskLockType"), ({"useSharedLock": "yes"}, "context.useSharedLock")],
)
def test_lock_type_for_names_the_bad_context_key(context, path):
    with pytest.raises(SpecError) as err:
        lock_type_for(context, True)
    assert err.value.path == path


def test_lock_timeout_from_context_in_ms_default_300s():
    assert lock_timeout_seconds({}) == 300.0
    assert lock_timeout_seconds({"taskLockTimeout": 1500}) == 1.5
    with pytest.raises(SpecError):
        lock_timeout_seconds({"taskLockTimeout": -1})


def posse(pid, type_, start, end, group="other", priority=50, revoked=False, tasks=("x",)):
    return Posse(pid, group, Interval(start, end), type_, f"v{pid}", priority, revoked, frozenset(tasks))


def test_append_cannot_coexist_with_two_replace_locks():
    req = Request("t", "g", Interval(1, 2), A, 50)
    assert can_coexist([posse("r1", R, 0, 3)], req)
    assert not can_coexist([posse("r1", R, 0, 3), posse("r2", R, 0, 4)], req)


def test_decide_prefers_a_revoked_reusable_lock_so_the_owner_learns():
    mine = posse("2", E, 0, 10, group="g", tasks=("t",))
    revoked = posse("1", E, 0, 5, group="g", revoked=True, tasks=("t",))
    decision = decide(Request("t", "g", Interval(1, 2), E, 50), [mine, revoked])
    assert decision.outcome == "reuse" and decision.posse is revoked


def test_decide_fail_lists_only_the_locks_it_could_not_preempt():
    low, high = posse("1", E, 0, 2, priority=10), posse("2", E, 2, 4, priority=90)
    decision = decide(Request("t", "g", Interval(1, 3), E, 50), [low, high])
    assert decision.outcome == "fail" and decision.blockers == (high,)
