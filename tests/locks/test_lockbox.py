"""The lockbox's rules, one behaviour per test, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from druidflow.exceptions import LockNotHeldError, LockRevokedError, SpecError
from druidflow.intervals import Interval, format_instant, now_ms, parse_instant
from druidflow.locks import APPEND_VERSION, LockType, TaskLockbox
from tests.locks.conftest import LEASE_S, T0, day

E, S, R, A = LockType.EXCLUSIVE, LockType.SHARED, LockType.REPLACE, LockType.APPEND
LEASE_MS = LEASE_S * 1000


def events(box, *kinds):
    return [(e["event"], e["task_id"]) for e in box.events() if not kinds or e["event"] in kinds]


# ---------------------------------------------------------------------------------------------- priority


def test_strictly_higher_priority_preempts_and_owner_learns_on_next_request(box):
    low = box.try_lock("low", "low", "wiki", day(1, 2), E, priority=25)
    high = box.try_lock("high", "high", "wiki", day(0, 3), E, priority=50)
    assert high.acquired and high.lock.version > low.lock.version
    # Optimistic: the row is only marked; the owner finds out when it asks again (try_lock and lock alike).
    again = box.try_lock("low", "low", "wiki", day(1, 2), E, priority=25)
    assert (again.acquired, again.revoked, again.lock.version) == (False, True, low.lock.version)
    started = time.monotonic()
    waited = box.lock("low", "low", "wiki", day(1, 2), E, priority=25, timeout=5)
    assert waited.revoked and time.monotonic() - started < 1  # lock() returns a revocation at once
    revoke = [e for e in box.events() if e["event"] == "revoke"]
    assert [(e["task_id"], e["actor"]) for e in revoke] == [("low", "high")]


def test_equal_priority_never_preempts(box):
    assert box.try_lock("first", "first", "wiki", day(1, 2), E, priority=50).acquired
    second = box.try_lock("second", "second", "wiki", day(1, 2), E, priority=50)
    assert not second.acquired and not second.revoked
    assert [lk.task_id for lk in second.conflicts] == ["first"]
    assert [lk.state for lk in box.locks()] == ["active"]


def test_lower_priority_waits_for_higher(box):
    assert box.try_lock("high", "high", "wiki", day(1, 2), E, priority=75).acquired
    assert not box.try_lock("low", "low", "wiki", day(1, 2), E, priority=25).acquired
    assert [lk.state for lk in box.locks()] == ["active"]


def test_shared_locks_never_preempt_each_other(box):
    assert box.try_lock("s-low", "s-low", "wiki", day(1, 3), S, priority=0).acquired
    assert box.try_lock("s-high", "s-high", "wiki", day(2, 4), S, priority=75).acquired
    assert [lk.state for lk in box.locks()] == ["active", "active"]


def test_shared_request_preempts_lower_exclusive_but_not_other_shared(box):
    assert box.try_lock("x", "x", "wiki", day(1, 2), E, priority=25).acquired
    assert box.try_lock("s", "s", "wiki", day(0, 3), S, priority=25).acquired is False
    assert box.try_lock("s2", "s2", "wiki", day(0, 3), S, priority=50).acquired
    states = {lk.task_id: lk.state for lk in box.locks()}
    assert states == {"x": "revoked", "s2": "active"}


def test_preemption_needs_every_conflicting_lock_lower_and_is_all_or_nothing(box):
    assert box.try_lock("low", "low", "wiki", day(1, 2), E, priority=25).acquired
    assert box.try_lock("high", "high", "wiki", day(2, 3), E, priority=75).acquired
    result = box.try_lock("mid", "mid", "wiki", day(1, 3), E, priority=50)
    assert not result.acquired and not result.revoked
    assert [lk.task_id for lk in result.conflicts] == ["high"]
    assert not any(lk.revoked for lk in box.locks())  # the lower one was NOT revoked on the way


def test_replace_preempts_only_incompatible_appends(box):
    assert box.try_lock("inside", "g1", "wiki", day(1, 2), A, priority=25).acquired
    assert box.try_lock("outside", "g2", "wiki", day(2, 5), A, priority=25).acquired
    assert box.try_lock("rep", "g3", "wiki", day(0, 3), R, priority=50).acquired
    assert {lk.task_id: lk.state for lk in box.locks()} == {"inside": "active", "outside": "revoked", "rep": "active"}


# ---------------------------------------------------------------------------------------------- idempotence


def test_reacquire_is_idempotent_and_reuses_a_containing_lock(box):
    first = box.try_lock("t1", "t1", "wiki", day(1, 3), E, priority=50)
    again = box.try_lock("t1", "t1", "wiki", day(1, 3), E, priority=50)
    inner = box.try_lock("t1", "t1", "wiki", day(1, 2), E, priority=50)
    assert again.lock.version == inner.lock.version == first.lock.version
    assert inner.lock.interval == Interval.parse(day(1, 3))  # the lock held, not the request
    assert len(box.locks()) == 1
    assert events(box) == [("acquire", "t1")]


def test_same_group_other_type_or_interval_is_not_reuse(box):
    assert box.try_lock("t1", "g", "wiki", day(1, 3), E, priority=50).acquired
    wider = box.try_lock("t1", "g", "wiki", day(1, 4), E, priority=50)
    assert not wider.acquired  # does not contain it, and equal priority cannot preempt
    # Modern Druid's escape: the same group may take another lock on exactly the interval it holds.
    other_type = box.try_lock("t2", "g", "wiki", day(1, 3), S, priority=50)
    assert other_type.acquired and other_type.lock.version > box.locks()[0].version
    reused = box.try_lock("t3", "g", "wiki", day(1, 2), S, priority=50)
    assert reused.acquired and reused.lock.version == other_type.lock.version  # joins the SHARED one
    # ... but not on a different interval
    assert not box.try_lock("t4", "g", "wiki", day(2, 3), R, priority=50).acquired


def test_revoked_lock_keeps_answering_revoked_until_released(box):
    box.try_lock("low", "low", "wiki", day(1, 2), E, priority=0)
    box.try_lock("high", "high", "wiki", day(1, 2), E, priority=50)
    box.release_all("high")
    for _ in range(2):
        assert box.try_lock("low", "low", "wiki", day(1, 2), E, priority=0).revoked
    box.release_all("low")
    assert box.try_lock("low", "low", "wiki", day(1, 2), E, priority=0).acquired


# ---------------------------------------------------------------------------------------------- groups


def test_tasks_of_one_group_share_one_lock_and_version(box):
    a = box.try_lock("sub-1", "parallel", "wiki", day(1, 3), E, priority=50)
    b = box.try_lock("sub-2", "parallel", "wiki", day(1, 2), E, priority=50)
    assert a.acquired and b.acquired and a.lock.version == b.lock.version
    assert a.lock.posse_id == b.lock.posse_id
    assert not box.try_lock("other", "other", "wiki", day(1, 2), E, priority=50).acquired
    box.release_all("sub-1")
    assert not box.try_lock("other", "other", "wiki", day(1, 2), E, priority=50).acquired  # sub-2 still holds it
    box.release_all("sub-2")
    assert box.try_lock("other", "other", "wiki", day(1, 2), E, priority=50).acquired


def test_group_members_must_have_equal_priority(box):
    assert box.try_lock("sub-1", "parallel", "wiki", day(1, 3), E, priority=50).acquired
    with pytest.raises(SpecError, match="priority"):
        box.try_lock("sub-2", "parallel", "wiki", day(1, 2), E, priority=75)
    assert [lk.task_id for lk in box.locks()] == ["sub-1"]


def test_revoking_a_group_lock_revokes_it_for_every_member(box):
    box.try_lock("sub-1", "parallel", "wiki", day(1, 3), E, priority=25)
    box.try_lock("sub-2", "parallel", "wiki", day(1, 3), E, priority=25)
    assert box.try_lock("rt", "rt", "wiki", day(2, 3), E, priority=75).acquired
    assert box.try_lock("sub-2", "parallel", "wiki", day(1, 3), E, priority=25).revoked
    assert box.try_lock("sub-3", "parallel", "wiki", day(1, 3), E, priority=25).revoked  # a newcomer too
    assert sorted(e[1] for e in events(box, "revoke")) == ["sub-1", "sub-2"]


def test_append_lock_enclosing_a_smaller_one_of_the_group_replaces_it(box):
    assert box.try_lock("t", "g", "wiki", day(1, 2), A, priority=50).acquired
    bigger = box.try_lock("t", "g", "wiki", day(0, 3), A, priority=50)
    assert bigger.acquired and bigger.lock.version == APPEND_VERSION
    assert [str(lk.interval) for lk in box.locks(task_id="t")] == [day(0, 3)]


# ---------------------------------------------------------------------------------------------- versions


def test_versions_are_iso_utc_ms_and_append_gets_the_epoch(box, clock):
    clock.now = parse_instant("2024-06-01T12:34:56.789Z")
    assert box.try_lock("t", "t", "wiki", day(1, 2), E, priority=50).lock.version == "2024-06-01T12:34:56.789Z"
    assert box.try_lock("a", "a", "wiki", day(5, 6), A, priority=50).lock.version == APPEND_VERSION == (
        "1970-01-01T00:00:00.000Z"
    )


def test_versions_strictly_increase_even_when_the_clock_steps_back(box, clock, db_url):
    seen = []
    for step in (0, -5000, 0, 3, -1):
        clock.advance(step)
        seen.append(box.try_lock(f"t{len(seen)}", None, "wiki", day(1, 2), E, priority=len(seen)).lock.version)
    assert seen == [format_instant(T0 + i) for i in range(5)]
    assert [lk.state for lk in box.locks()] == ["revoked"] * 4 + ["active"]
    # The last version is kept in the database: another lockbox, further behind, still goes up.
    behind = TaskLockbox(db_url, lease_seconds=LEASE_S, clock=lambda: T0 - 3_600_000)
    assert behind.try_lock("late", "late", "wiki", day(7, 8), E, priority=0).lock.version == format_instant(T0 + 5)
    behind.engine.dispose()


# ---------------------------------------------------------------------------------------------- leases


def test_expired_lease_frees_the_interval_and_stays_visible(box, clock):
    held = box.try_lock("dead", "dead", "wiki", day(1, 2), E, priority=75)
    clock.advance(LEASE_MS - 1)
    assert not box.try_lock("next", "next", "wiki", day(1, 2), E, priority=0).acquired
    clock.advance(1)
    [lk] = box.locks()
    assert lk.expired and lk.state == "expired" and lk.lease_expires_ms == held.lock.lease_expires_ms
    got = box.try_lock("next", "next", "wiki", day(1, 2), E, priority=0)
    assert got.acquired
    assert {lk.task_id: lk.state for lk in box.locks()} == {"dead": "expired", "next": "active"}
    assert events(box) == [("acquire", "dead"), ("expire", "dead"), ("acquire", "next")]
    box.try_lock("next", "next", "wiki", day(1, 2), E, priority=0)
    assert events(box, "expire") == [("expire", "dead")]  # recorded once


def test_heartbeat_extends_every_lease_of_the_task(box, clock):
    box.try_lock("t", "t", "wiki", day(1, 2), E, priority=50)
    box.try_lock("t", "t", "koala", day(1, 2), E, priority=50)
    clock.advance(LEASE_MS - 1)
    assert box.heartbeat("t") == 2
    clock.advance(LEASE_MS - 1)
    assert not box.try_lock("o", "o", "wiki", day(1, 2), E, priority=0).acquired
    assert not box.try_lock("o", "o", "koala", day(1, 2), E, priority=0).acquired
    assert all(lk.active for lk in box.locks())


def test_heartbeat_never_revives_an_expired_lease(box, clock):
    box.try_lock("t", "t", "wiki", day(1, 2), E, priority=50)
    clock.advance(LEASE_MS)
    assert box.heartbeat("t") == 0
    clock.advance(-10 * LEASE_MS)  # even a clock far behind cannot bring the recorded expiry back
    assert box.heartbeat("t") == 0
    assert [lk.state for lk in box.locks()] == ["expired"]
    with pytest.raises(LockRevokedError, match="lease"):
        with box.critical_section("t", [day(1, 2)]):
            pass


def test_group_lock_lives_while_one_member_heartbeats_and_a_lapsed_member_rejoins(box, clock):
    a = box.try_lock("a", "g", "wiki", day(1, 2), E, priority=50)
    box.try_lock("b", "g", "wiki", day(1, 2), E, priority=50)
    clock.advance(LEASE_MS // 2)
    box.heartbeat("b")
    clock.advance(LEASE_MS // 2)
    assert not box.try_lock("o", "o", "wiki", day(1, 2), E, priority=0).acquired  # b keeps it alive
    assert {lk.task_id: lk.state for lk in box.locks()} == {"a": "expired", "b": "active", }
    back = box.try_lock("a", "g", "wiki", day(1, 2), E, priority=50)
    assert back.acquired and back.lock.version == a.lock.version
    assert events(box, "acquire", "expire") == [("acquire", "a"), ("acquire", "b"), ("expire", "a"), ("acquire", "a")]


def test_long_expired_rows_are_forgotten_after_the_retention(db_url, clock):
    box = TaskLockbox(db_url, lease_seconds=1, clock=clock, expired_retention_seconds=10)
    box.create_tables()
    box.try_lock("dead", "dead", "wiki", day(1, 2), E, priority=0)
    clock.advance(1000)
    box.try_lock("x", "x", "wiki", day(1, 2), E, priority=0)  # records the expiry
    box.try_lock("y", "y", "wiki", day(5, 6), E, priority=0)
    box.release_all("x")
    assert [lk.task_id for lk in box.locks()] == ["dead", "y"]
    clock.advance(10_001)
    box.release_all("y")  # releases on the dataSource forget rows expired longer than the retention
    assert box.locks() == []
    box.engine.dispose()


def wait_until_past(instant_ms: int, deadline_s: float = 60.0) -> None:
    """Sleep until the wall clock is past ``instant_ms`` (a lease the lockbox stamped), however slow the machine."""
    deadline = time.monotonic() + deadline_s
    while now_ms() <= instant_ms and time.monotonic() < deadline:
        time.sleep(0.02)
    assert now_ms() > instant_ms, f"the clock never passed {format_instant(instant_ms)}"


def test_keep_alive_heartbeats_in_the_background(db_url):
    lease_s = 1.5  # a heartbeat every lease/5: a beat may run 1.2 s late on a loaded machine before the lease lapses
    box = TaskLockbox(db_url, lease_seconds=lease_s)
    box.create_tables()
    granted = box.try_lock("t", "t", "wiki", day(1, 2), E, priority=50)
    assert granted.acquired
    with box.keep_alive("t", every=lease_s / 5):
        wait_until_past(granted.lock.lease_expires_ms + 250)  # past the lease it was granted with
        [lock] = box.locks()
        assert lock.state == "active" and lock.lease_expires_ms > granted.lock.lease_expires_ms
    [beaten] = box.locks()  # the block has joined the heartbeat thread: this lease is the last one
    wait_until_past(beaten.lease_expires_ms)
    [lock] = box.locks()
    assert lock.state == "expired" and lock.lease_expires_ms == beaten.lease_expires_ms
    box.engine.dispose()


# ---------------------------------------------------------------------------------------------- release


def test_release_drops_exactly_one_interval_and_release_all_everything(box):
    box.try_lock("t", "t", "wiki", day(1, 2), E, priority=50)
    box.try_lock("t", "t", "wiki", day(2, 3), E, priority=50)
    box.try_lock("t", "t", "koala", day(1, 2), E, priority=50)
    assert box.release("t", day(1, 3)) == 0  # not an interval it locked
    assert box.release("t", day(1, 2), datasource="wiki") == 1
    assert [(lk.datasource, str(lk.interval)) for lk in box.locks()] == [("koala", day(1, 2)), ("wiki", day(2, 3))]
    assert box.release_all("t") == 2
    assert box.locks() == [] and box.release_all("t") == 0
    assert events(box, "release") == [("release", "t")] * 3


def test_force_release_is_recorded_with_actor_and_reason(box):
    box.try_lock("stuck", "stuck", "wiki", day(1, 2), E, priority=50)
    with pytest.raises(SpecError, match="reason"):
        box.force_release("stuck", actor="alice", reason="")
    assert box.force_release("stuck", actor="alice", reason="worker host decommissioned") == 1
    [ev] = [e for e in box.events() if e["event"] == "force_release"]
    assert (ev["task_id"], ev["actor"], ev["detail"]) == ("stuck", "alice", "worker host decommissioned")
    assert box.try_lock("next", "next", "wiki", day(1, 2), E, priority=0).acquired
    with pytest.raises(LockNotHeldError):
        with box.critical_section("stuck", [day(1, 2)], datasource="wiki"):
            pass


# ---------------------------------------------------------------------------------------------- critical section


@pytest.fixture
def published(box):
    table = sa.Table("published_rows", sa.MetaData(), sa.Column("task_id", sa.String(50)), sa.Column("version", sa.String(40)))
    table.create(box.engine)
    return table


def count(box, table):
    with box.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_critical_section_commits_the_writes_with_the_lock_check(box, published):
    got = box.try_lock("t", "t", "wiki", day(1, 3), E, priority=50)
    with box.critical_section("t", [day(1, 2), day(2, 3)]) as cs:
        assert [lk.version for lk in cs.locks] == [got.lock.version]
        assert cs.lock_for(day(1, 2)).version == got.lock.version
        cs.connection.execute(sa.insert(published).values(task_id="t", version=cs.lock_for(day(1, 2)).version))
    assert count(box, published) == 1


def test_critical_section_rolls_back_when_the_block_fails(box, published):
    box.try_lock("t", "t", "wiki", day(1, 3), E, priority=50)
    with pytest.raises(RuntimeError):
        with box.critical_section("t", [day(1, 2)]) as cs:
            cs.connection.execute(sa.insert(published).values(task_id="t", version="v"))
            raise RuntimeError("push failed")
    assert count(box, published) == 0


def test_critical_section_refuses_revoked_unheld_and_uncovered(box):
    box.try_lock("low", "low", "wiki", day(1, 2), E, priority=0)
    box.try_lock("other", "other", "wiki", day(5, 6), E, priority=0)
    box.try_lock("high", "high", "wiki", day(1, 2), E, priority=50)
    with pytest.raises(LockRevokedError, match="revoked"):
        with box.critical_section("low", [day(1, 2)]):
            pytest.fail("entered the critical section with a revoked lock")
    with pytest.raises(LockNotHeldError):
        with box.critical_section("nobody", [day(1, 2)]):
            pass
    with pytest.raises(LockNotHeldError, match="covering"):
        with box.critical_section("other", [day(5, 6), day(6, 7)]):
            pass


def test_no_revocation_while_the_holder_is_inside_the_critical_section(db_url, published):
    owner = TaskLockbox(db_url, lease_seconds=LEASE_S)
    rival = TaskLockbox(db_url, lease_seconds=LEASE_S)  # its own connections, like another worker
    owner.try_lock("low", "low", "wiki", day(1, 2), E, priority=0)
    inside, leave = threading.Event(), threading.Event()
    answers = []

    def publish():
        with owner.critical_section("low", [day(1, 2)]) as cs:
            inside.set()
            leave.wait(10)
            cs.connection.execute(sa.insert(published).values(task_id="low", version=cs.locks[0].version))

    def preempt():
        answers.append(rival.try_lock("high", "high", "wiki", day(1, 2), E, priority=75))

    publisher = threading.Thread(target=publish)
    publisher.start()
    assert inside.wait(10)
    preemptor = threading.Thread(target=preempt)
    preemptor.start()
    preemptor.join(0.5)
    assert preemptor.is_alive() and answers == []  # blocked on the mutex while the publish is in progress
    leave.set()
    publisher.join(10)
    preemptor.join(10)
    assert answers[0].acquired
    assert count(owner, published) == 1  # the publish landed, and only then was the lock revoked
    assert [(e["event"], e["task_id"]) for e in owner.events()] == [
        ("acquire", "low"), ("revoke", "low"), ("acquire", "high"),
    ]
    owner.engine.dispose()
    rival.engine.dispose()


# ---------------------------------------------------------------------------------------------- lock()


def test_lock_waits_without_holding_a_transaction_and_gets_the_interval_when_freed(db_url):
    box = TaskLockbox(db_url, lease_seconds=LEASE_S)
    box.create_tables()
    box.try_lock("holder", "holder", "wiki", day(1, 2), E, priority=50)

    def free_later():
        time.sleep(0.4)
        # If lock() kept a transaction open while waiting, this would block (SQLite) or deadlock the wait.
        assert box.try_lock("bystander", "bystander", "wiki", day(8, 9), E, priority=0).acquired
        box.release_all("holder")

    helper = threading.Thread(target=free_later)
    helper.start()
    started = time.monotonic()
    got = box.lock("waiter", "waiter", "wiki", day(1, 2), E, priority=50, timeout=10)
    helper.join()
    assert got.acquired and 0.35 < time.monotonic() - started < 5


def test_lock_times_out_with_the_last_answer(box):
    box.try_lock("holder", "holder", "wiki", day(1, 2), E, priority=50)
    started = time.monotonic()
    got = box.lock("waiter", "waiter", "wiki", day(1, 2), E, priority=50, timeout=0.3)
    assert not got.acquired and not got.revoked and [lk.task_id for lk in got.conflicts] == ["holder"]
    assert 0.3 <= time.monotonic() - started < 2


# ---------------------------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"interval": "2024-01-02/2024-01-01"}, "interval"),
        ({"interval": "2024-01-01/2024-01-01"}, "interval"),
        ({"lock_type": "WRITE"}, "lock_type"),
        ({"datasource": ""}, "datasource"),
        ({"priority": "high"}, "priority"),
    ],
)
def test_bad_requests_name_the_field(box, kwargs, field):
    args = {"task_id": "t", "group_id": "t", "datasource": "wiki", "interval": day(1, 2), "lock_type": "EXCLUSIVE", "priority": 1}
    with pytest.raises(SpecError) as err:
        box.try_lock(**{**args, **kwargs})
    assert err.value.path == field


def test_lockbox_calls_inside_the_critical_section_fail_fast_instead_of_deadlocking(box):
    box.try_lock("t", "t", "wiki", day(1, 2), E, priority=50)
    with box.critical_section("t", [day(1, 2)]) as cs:
        with pytest.raises(RuntimeError, match="inside a critical section"):
            box.heartbeat("t")
        assert cs.locks[0].task_id == "t"
    assert box.heartbeat("t") == 1  # and usable again afterwards


def test_critical_section_needs_the_datasource_when_the_task_locks_several(box):
    box.try_lock("t", "t", "wiki", day(1, 2), E, priority=50)
    box.try_lock("t", "t", "koala", day(1, 2), E, priority=50)
    with pytest.raises(SpecError) as err:
        with box.critical_section("t", [day(1, 2)]):
            pass
    assert err.value.path == "datasource"
    with box.critical_section("t", [day(1, 2)], datasource="koala") as cs:
        assert cs.datasource == "koala" and [lk.datasource for lk in cs.locks] == ["koala"]
