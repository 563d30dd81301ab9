"""PostgreSQL's one-round-trip lock path (druidflow.locks.fast_path) writes exactly what the general path writes,
answers only when nothing overlaps, and the lockbox still works in a database without its functions."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from druidflow.locks import TaskLockbox
from druidflow.locks.fast_path import ACQUIRE_FUNCTION
from druidflow.metadata.tables import lock_datasources, lock_events, metadata, task_locks
from tests.locks.conftest import LEASE_S, FakeClock, day

pytestmark = pytest.mark.postgres

_VOLATILE = {"id", "posse_id"}


def _rows(box: TaskLockbox, datasource: str) -> tuple[list[dict], list[dict], str]:
    with box.engine.connect() as conn:
        locks = conn.execute(sa.select(task_locks).where(task_locks.c.dataSource == datasource).order_by(task_locks.c.id))
        events = conn.execute(
            sa.select(lock_events).where(lock_events.c.dataSource == datasource).order_by(lock_events.c.id)
        )
        last = conn.execute(
            sa.select(lock_datasources.c.last_version).where(lock_datasources.c.dataSource == datasource)
        ).scalar_one()
        strip = lambda rows: [{k: v for k, v in r.items() if k not in _VOLATILE} for r in rows.mappings()]  # noqa: E731
        return strip(locks), strip(events), last


def _script(box: TaskLockbox, clock: FakeClock, ds: str) -> list:
    """New locks, a reuse, a shared pair, an APPEND lock, releases: what both paths must record alike."""
    answers = []
    answers.append(box.try_lock("a", None, ds, day(0, 1), "EXCLUSIVE", 50))
    clock.advance(5)
    answers.append(box.try_lock("b", None, ds, day(1, 2), "EXCLUSIVE", 50))
    answers.append(box.try_lock("a", None, ds, day(0, 1), "EXCLUSIVE", 50))  # reuse: general path
    answers.append(box.try_lock("c", None, ds, day(0, 1), "EXCLUSIVE", 50))  # conflict: fails
    answers.append(box.try_lock("d", None, ds, day(5, 6), "APPEND", 25))
    clock.advance(5)
    answers.append(box.release_all("a"))
    answers.append(box.release_all("nobody"))
    answers.append(box.try_lock("c", None, ds, day(0, 1), "EXCLUSIVE", 50))
    answers.append(box.release_all("b") + box.release_all("c") + box.release_all("d"))
    return [
        (a.acquired, a.revoked, a.lock and (a.lock.version, str(a.lock.interval), a.lock.lease_expires_ms))
        if not isinstance(a, int) else a
        for a in answers
    ]


def test_fast_path_records_what_the_general_path_records(pg_url):
    clock = FakeClock()
    fast = TaskLockbox(pg_url, lease_seconds=LEASE_S, clock=clock)
    fast.create_tables()
    general = TaskLockbox(pg_url, lease_seconds=LEASE_S, clock=clock)
    general._fast = None  # the general path only
    try:
        start = clock.now
        with_fast = _script(fast, clock, "fast")
        clock.now = start  # the same instants again
        without = _script(general, clock, "general")
        assert with_fast == without
        f_locks, f_events, f_last = _rows(fast, "fast")
        g_locks, g_events, g_last = _rows(general, "general")
        assert f_last == g_last
        rename = lambda rows: [{**r, "dataSource": "x"} for r in rows]  # noqa: E731
        assert rename(f_locks) == rename(g_locks) == []
        assert rename(f_events) == rename(g_events)
        assert [e["event"] for e in f_events] == ["acquire", "acquire", "acquire", "release", "acquire", "release",
                                                 "release", "release"]
    finally:
        fast.close()
        general.close()


def test_fast_path_answers_in_one_statement_and_leaves_overlaps_to_the_general_path(pg_url):
    clock = FakeClock()
    box = TaskLockbox(pg_url, lease_seconds=LEASE_S, clock=clock)
    box.create_tables()
    statements: list[str] = []
    sa.event.listen(box.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        assert box.try_lock("a", None, "ds", day(0, 2), "EXCLUSIVE", 50).acquired
        assert statements == []  # the fast path's own connection, no SQLAlchemy statement
        clock.advance(LEASE_S * 1000 + 1)  # a's lease ran out, not yet recorded: the general path records it
        assert box.try_lock("b", None, "ds", day(1, 3), "EXCLUSIVE", 50).acquired
        assert statements
        assert [e["event"] for e in box.events("ds")] == ["acquire", "expire", "acquire"]
        statements.clear()
        assert box.release_all("b") == 1
        assert statements == []
    finally:
        box.close()


def test_lockbox_without_the_functions_takes_the_general_path(pg_url):
    clock = FakeClock()
    box = TaskLockbox(pg_url, lease_seconds=LEASE_S, clock=clock)
    metadata.create_all(box.engine, tables=[lock_datasources, task_locks, lock_events])  # no functions
    try:
        with box.engine.connect() as conn:
            assert not conn.execute(sa.text("select 1 from pg_proc where proname = :n and pronamespace = current_schema()::regnamespace"), {"n": ACQUIRE_FUNCTION}).all()
        assert box.try_lock("a", None, "ds", day(0, 1), "EXCLUSIVE", 50).acquired
        assert not box.try_lock("b", None, "ds", day(0, 1), "EXCLUSIVE", 50).acquired
        assert box.release_all("a") == 1
        assert box.try_lock("b", None, "ds", day(0, 1), "EXCLUSIVE", 50).acquired
    finally:
        box.close()
