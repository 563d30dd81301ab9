"""§6.2's compatibility table, cell by cell, on a real database (equal priorities, so nothing is preempted)."""

from __future__ import annotations

import pytest

from druidflow.locks import LockType
from tests.locks.conftest import day

E, S, R, A = LockType.EXCLUSIVE, LockType.SHARED, LockType.REPLACE, LockType.APPEND

# (requested, held) -> coexist? Same dataSource, identical interval, different groups.
TABLE = {
    (E, E): False, (E, S): False, (E, R): False, (E, A): False,
    (S, E): False, (S, S): True, (S, R): False, (S, A): False,
    (R, E): False, (R, S): False, (R, R): False, (R, A): True,   # the APPEND interval lies inside (equal)
    (A, E): False, (A, S): False, (A, R): True, (A, A): True,    # the REPLACE interval encloses (equal)
}


@pytest.mark.parametrize(("requested", "held"), list(TABLE), ids=[f"{r.value}-vs-held-{h.value}" for r, h in TABLE])
def test_compatibility_cell(box, requested, held):
    first = box.try_lock("holder", "g-holder", "wiki", day(1, 3), held, priority=50)
    assert first.acquired
    second = box.try_lock("asker", "g-asker", "wiki", day(1, 3), requested, priority=50)
    assert second.acquired is TABLE[(requested, held)]
    assert not second.revoked
    if second.acquired:
        assert {lk.task_id for lk in box.locks("wiki") if lk.active} == {"holder", "asker"}
    else:
        assert [lk.task_id for lk in second.conflicts] == ["holder"]
    # Nothing is ever revoked between equal priorities.
    assert not any(lk.revoked for lk in box.locks("wiki"))


@pytest.mark.parametrize(
    ("replace", "append", "coexist"),
    [
        (day(0, 4), day(1, 2), True),   # APPEND inside REPLACE
        (day(1, 2), day(0, 4), False),  # APPEND sticks out of REPLACE
        (day(0, 2), day(1, 3), False),  # partial overlap
    ],
)
def test_replace_and_append_need_containment_both_ways(box, replace, append, coexist):
    assert box.try_lock("r", "gr", "wiki", replace, R, priority=50).acquired
    assert box.try_lock("a", "ga", "wiki", append, A, priority=50).acquired is coexist
    box.release_all("r")
    box.release_all("a")
    assert box.try_lock("a", "ga", "wiki", append, A, priority=50).acquired
    assert box.try_lock("r", "gr", "wiki", replace, R, priority=50).acquired is coexist


def test_revoked_lock_blocks_nothing(box):
    for held in LockType:
        for requested in LockType:
            ds = f"wiki-{held.value}-{requested.value}"
            assert box.try_lock(f"low-{ds}", "g-low", ds, day(1, 3), held, priority=0).acquired
            assert box.try_lock(f"high-{ds}", "g-high", ds, day(1, 3), E, priority=75).acquired
            box.release_all(f"high-{ds}")
            assert [lk.state for lk in box.locks(ds)] == ["revoked"]
            # Same priority as the revoked lock, so it could not preempt it: only "revoked blocks nothing" lets it in.
            assert box.try_lock(f"next-{ds}", "g-next", ds, day(1, 3), requested, priority=0).acquired, (held, requested)


def test_overlap_means_same_datasource_and_overlapping_interval(box):
    assert box.try_lock("t1", "g1", "wiki", day(1, 3), E, priority=50).acquired
    assert box.try_lock("t2", "g2", "wiki", day(3, 5), E, priority=50).acquired  # abutting: no overlap
    assert box.try_lock("t3", "g3", "koala", day(1, 3), E, priority=50).acquired  # other dataSource
    assert not box.try_lock("t4", "g4", "wiki", day(2, 4), E, priority=50).acquired  # overlaps both
