"""A stateful property test: random sequences of acquire, release, heartbeat, clock moves (lease expiry, clock
stepping back) and publish, run against the real lockbox and a small in-memory model of Druid's rules.

The model is written independently of ``druidflow.locks.rules``: a literal compatibility table and the §6.3
algorithm spelled out over plain lists. After every step the two must agree on every lock row (owner, type,
interval, version, priority, revoked, lease, expired) and on which tasks share which lock; and the model must
never hold two active conflicting locks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from druidflow.exceptions import LockNotHeldError, LockRevokedError, SpecError
from druidflow.intervals import MS_DAY, Interval, format_instant
from druidflow.locks import TaskLockbox
from druidflow.metadata.engine import make_engine
from druidflow.metadata.tables import lock_datasources, lock_events, task_locks
from tests.locks.conftest import DAY0, T0, FakeClock

E, S, R, A = "EXCLUSIVE", "SHARED", "REPLACE", "APPEND"
LEASE_MS = 10_000
# task -> (group, priority). a3 shares a1/a2's group with another priority: Druid refuses to mix them.
TASKS = {"a1": ("ga", 50), "a2": ("ga", 50), "a3": ("ga", 75), "b": ("gb", 75), "c": ("gc", 25), "d": ("gd", 50)}
SPANS = [(0, 1), (1, 2), (2, 3), (0, 2), (1, 3), (0, 3)]
DATASOURCES = ["wiki", "koala"]


def interval(span: tuple[int, int]) -> str:
    return str(Interval(DAY0 + span[0] * MS_DAY, DAY0 + span[1] * MS_DAY))


def overlaps(x: tuple[int, int], y: tuple[int, int]) -> bool:
    return x[0] < y[1] and y[0] < x[1]


def contains(outer: tuple[int, int], inner: tuple[int, int]) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1]


def coexist(held_type: str, held: tuple[int, int], req_type: str, req: tuple[int, int]) -> bool:
    """§6.2, one pair at a time, for overlapping active locks."""
    table = {
        (S, S): True,
        (A, A): True,
        (R, A): contains(held, req),  # held REPLACE, requested APPEND
        (A, R): contains(req, held),  # held APPEND, requested REPLACE
    }
    return table.get((held_type, req_type), False)


@dataclass
class MLock:
    pid: int
    ds: str
    group: str
    span: tuple[int, int]
    type: str
    version: int
    priority: int
    revoked: bool = False
    members: dict[str, list] = field(default_factory=dict)  # task -> [lease, expired_at]


class Model:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.locks: list[MLock] = []
        self.last_version: dict[str, int] = {}
        self.next_pid = 0

    @property
    def now(self) -> int:
        return self.clock.now

    def live(self, member: list) -> bool:
        return member[1] is None and member[0] > self.now

    def sweep(self, ds: str, span: tuple[int, int] | None = None, task: str | None = None) -> None:
        """Record the expiry of the leases a decision relies on: over ``span``, or of ``task``."""
        for lk in self.locks:
            if lk.ds != ds or (span is not None and not overlaps(lk.span, span)):
                continue
            for owner, member in lk.members.items():
                if (task is None or owner == task) and member[1] is None and member[0] <= self.now:
                    event("lease expired")
                    member[1] = self.now

    def existing(self, ds: str) -> list[MLock]:
        return [lk for lk in self.locks if lk.ds == ds and any(self.live(m) for m in lk.members.values())]

    def task_datasources(self, task: str) -> list[str]:
        return sorted({lk.ds for lk in self.locks if task in lk.members})

    def try_lock(self, task: str, ds: str, span: tuple[int, int], typ: str):
        group, priority = TASKS[task]
        before = copy.deepcopy((self.locks, self.last_version))
        self.sweep(ds, span=span)
        found = [lk for lk in self.existing(ds) if overlaps(lk.span, span)]
        live_tasks = {id(lk): {t for t, m in lk.members.items() if self.live(m)} for lk in found}
        chosen = None
        if found:
            same = [lk for lk in found if lk.type == typ and lk.group == group and contains(lk.span, span)]
            same.sort(key=lambda lk: (-lk.version, lk.span[1] - lk.span[0], lk.span[0]))
            if same:
                pick = next((lk for lk in same if lk.revoked), None) or next(
                    (lk for lk in same if task in live_tasks[id(lk)]), None
                ) or same[0]
                if pick.revoked:
                    return ("revoked", pick)
                if pick.priority != priority:
                    self.locks, self.last_version = before
                    return ("error", None)
                member = pick.members.get(task)
                if member is not None and self.live(member):
                    member[0] = max(member[0], self.now + LEASE_MS)
                    return ("ok", pick)
                pick.members[task] = [self.now + LEASE_MS, None]
                chosen = pick
            else:
                active = [lk for lk in found if not lk.revoked]
                bad = [lk for lk in active if not coexist(lk.type, lk.span, typ, span)]
                two_replaces = typ == A and sum(lk.type == R for lk in active) > 1
                if not bad and not two_replaces:
                    pass
                elif all(lk.priority < priority for lk in bad):
                    event("revocation" if bad else "two REPLACE around an APPEND")
                    for lk in bad:
                        lk.revoked = True
                elif all(lk.group == group and lk.span == span for lk in active):
                    event("same group, same interval")
                else:
                    blockers = {t for lk in bad if lk.priority >= priority for t in live_tasks[id(lk)]}
                    return ("fail", blockers)
        if chosen is None:
            if typ == A:
                version = 0
            else:
                last = self.last_version.get(ds)
                version = self.now if last is None else max(self.now, last + 1)
                self.last_version[ds] = version
            chosen = MLock(self.next_pid, ds, group, span, typ, version, priority)
            self.next_pid += 1
            chosen.members[task] = [self.now + LEASE_MS, None]
            self.locks.append(chosen)
        if typ == A:  # a bigger APPEND lock of the group replaces the task's smaller ones
            for lk in found:
                if (
                    lk is not chosen and task in live_tasks[id(lk)] and lk.type == A and lk.group == group
                    and lk.span != chosen.span and contains(chosen.span, lk.span)
                ):
                    event("superseded")
                    del lk.members[task]
            self.locks = [lk for lk in self.locks if lk.members]
        return ("ok", chosen)

    def heartbeat(self, task: str) -> int:
        count = 0
        for ds in self.task_datasources(task):
            self.sweep(ds, task=task)
        for lk in self.locks:
            member = lk.members.get(task)
            if member is not None and self.live(member):
                member[0] = max(member[0], self.now + LEASE_MS)
                count += 1
        return count

    def remove(self, task: str, datasources: list[str], span: tuple[int, int] | None = None) -> int:
        removed = 0
        for ds in datasources:
            for lk in self.locks:
                if lk.ds == ds and task in lk.members and (span is None or lk.span == span):
                    del lk.members[task]
                    removed += 1
        self.locks = [lk for lk in self.locks if lk.members]
        return removed

    def publish(self, task: str, ds: str, spans: list[tuple[int, int]]):
        before = copy.deepcopy((self.locks, self.last_version))
        self.sweep(ds, task=task)
        mine = [lk for lk in self.locks if lk.ds == ds and task in lk.members]
        revoked = missing = False
        valid = set()
        for span in spans:
            covering = [lk for lk in mine if contains(lk.span, span)]
            live = [lk for lk in covering if self.live(lk.members[task])]
            if not covering:
                missing = True
            elif not live or any(lk.revoked for lk in live):
                revoked = True
            else:
                valid.update(lk.version for lk in live)
        if revoked or missing:
            self.locks, self.last_version = before
            return "revoked" if revoked else "not held"
        for lk in mine:
            member = lk.members[task]
            if self.live(member):
                member[0] = max(member[0], self.now + LEASE_MS)
        return valid

    def rows(self) -> list[tuple]:
        return sorted(
            (task, lk.group, lk.ds, lk.span, lk.type, format_instant(lk.version), lk.priority, lk.revoked, m[0],
             m[1] is not None or m[0] <= self.now)
            for lk in self.locks for task, m in lk.members.items()
        )

    def sharing(self) -> list[tuple]:
        return sorted((lk.ds, lk.span, lk.type, lk.version, tuple(sorted(lk.members))) for lk in self.locks)


class LockboxMachine(RuleBasedStateMachine):
    engine: sa.engine.Engine  # set by the test

    def __init__(self) -> None:
        super().__init__()
        with self.engine.begin() as conn:
            for table in (task_locks, lock_events, lock_datasources, PUBLISHED):
                conn.execute(sa.delete(table))
        self.clock = FakeClock(T0)
        self.box = TaskLockbox(self.engine, lease_seconds=LEASE_MS / 1000, clock=self.clock)
        self.model = Model(self.clock)
        self.published = 0

    @rule(task=st.sampled_from(sorted(TASKS)), ds=st.sampled_from(DATASOURCES), span=st.sampled_from(SPANS),
          typ=st.sampled_from([E, S, R, A]))
    def try_lock(self, task, ds, span, typ):
        group, priority = TASKS[task]
        expected, detail = self.model.try_lock(task, ds, span, typ)
        event(f"try_lock: {expected}")
        try:
            got = self.box.try_lock(task, group, ds, interval(span), typ, priority)
        except SpecError:
            assert expected == "error"
            return
        if expected == "ok":
            assert got.acquired, got
            assert (got.lock.version, got.lock.interval, got.lock.type.value) == (
                format_instant(detail.version), Interval.parse(interval(detail.span)), detail.type
            )
        elif expected == "revoked":
            assert got.revoked and not got.acquired and got.lock.version == format_instant(detail.version)
        else:
            assert expected == "fail" and not got.acquired and not got.revoked, got
            assert {lk.task_id for lk in got.conflicts} == detail

    @rule(data=st.data())
    def release(self, data):
        if self.model.locks and data.draw(st.booleans()):
            lk = data.draw(st.sampled_from(self.model.locks))
            task, ds, span = data.draw(st.sampled_from(sorted(lk.members))), lk.ds, lk.span
        else:
            task, ds, span = (data.draw(st.sampled_from(x)) for x in (sorted(TASKS), DATASOURCES, SPANS))
        assert self.box.release(task, interval(span), datasource=ds) == self.model.remove(task, [ds], span)

    @rule(task=st.sampled_from(sorted(TASKS)))
    def release_all(self, task):
        assert self.box.release_all(task) == self.model.remove(task, self.model.task_datasources(task))

    @rule(task=st.sampled_from(sorted(TASKS)))
    def force_release(self, task):
        expected = self.model.remove(task, self.model.task_datasources(task))
        assert self.box.force_release(task, actor="admin", reason="test") == expected

    @rule(task=st.sampled_from(sorted(TASKS)))
    def heartbeat(self, task):
        assert self.box.heartbeat(task) == self.model.heartbeat(task)

    @rule(ms=st.sampled_from([1, LEASE_MS // 2, LEASE_MS - 1, LEASE_MS, LEASE_MS + 1, 3 * LEASE_MS, -1, -LEASE_MS]))
    def move_clock(self, ms):
        self.clock.advance(ms)

    def publish(self, task, ds, spans):
        expected = self.model.publish(task, ds, spans)
        event(f"publish: {expected if isinstance(expected, str) else 'ok'}")
        try:
            with self.box.critical_section(task, [interval(s) for s in spans], datasource=ds) as cs:
                versions = {lk.version for lk in cs.locks}
                cs.connection.execute(sa.insert(PUBLISHED).values(task_id=task))
        except LockRevokedError:
            assert expected == "revoked"
        except LockNotHeldError:
            assert expected == "not held"
        else:
            assert versions == {format_instant(v) for v in expected}
            self.published += 1
        with self.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(PUBLISHED)).scalar_one() == self.published

    # Two biased rules, so that runs keep hitting the interesting paths: asking again for a lock one holds (or
    # held: revoked, expired) or that one's group holds, and publishing under a lock one has (or had).
    @precondition(lambda self: self.model.locks)
    @rule(data=st.data())
    def ask_again(self, data):
        lk = data.draw(st.sampled_from(self.model.locks))
        task = data.draw(st.sampled_from(sorted(t for t, (g, _) in TASKS.items() if g == lk.group)))
        span = data.draw(st.sampled_from([s for s in SPANS if contains(lk.span, s) or contains(s, lk.span)]))
        self.try_lock(task, lk.ds, span, lk.type)

    @rule(data=st.data())
    def publish_under_a_lock(self, data):
        if not self.model.locks or data.draw(st.integers(0, 4)) == 0:  # now and then, anything at all
            task, ds = data.draw(st.sampled_from(sorted(TASKS))), data.draw(st.sampled_from(DATASOURCES))
            spans = data.draw(st.lists(st.sampled_from(SPANS), min_size=1, max_size=2))
        else:
            lk = data.draw(st.sampled_from(self.model.locks))
            task, ds = data.draw(st.sampled_from(sorted(lk.members))), lk.ds
            spans = data.draw(st.lists(st.sampled_from([s for s in SPANS if contains(lk.span, s)]), min_size=1, max_size=2))
        self.publish(task, ds, spans)

    @invariant()
    def lockbox_and_model_agree(self):
        locks = self.box.locks()
        real = sorted(
            (lk.task_id, lk.group_id, lk.datasource,
             ((lk.interval.start - DAY0) // MS_DAY, (lk.interval.end - DAY0) // MS_DAY),
             lk.type.value, lk.version, lk.priority, lk.revoked, lk.lease_expires_ms, lk.expired)
            for lk in locks
        )
        assert real == self.model.rows()
        posses: dict[str, list] = {}
        for lk in locks:
            posses.setdefault(lk.posse_id, []).append(lk)
        real_sharing = sorted(
            (group[0].datasource, ((group[0].interval.start - DAY0) // MS_DAY, (group[0].interval.end - DAY0) // MS_DAY),
             group[0].type.value, group[0].version, tuple(sorted(lk.task_id for lk in group)))
            for group in posses.values()
        )
        model_sharing = [(d, s, t, format_instant(v), m) for d, s, t, v, m in self.model.sharing()]
        assert real_sharing == sorted(model_sharing)

    @invariant()
    def no_two_active_conflicting_locks(self):
        for ds in DATASOURCES:
            active = [lk for lk in self.model.existing(ds) if not lk.revoked]
            for i, x in enumerate(active):
                for y in active[i + 1:]:
                    if overlaps(x.span, y.span) and not coexist(x.type, x.span, y.type, y.span):
                        assert x.group == y.group and x.span == y.span, (x, y)

    @invariant()
    def versions_only_go_up(self):
        for ds, last in self.model.last_version.items():
            assert all(lk.version <= last for lk in self.model.locks if lk.ds == ds and lk.type != A)


PUBLISHED = sa.Table("stateful_published", sa.MetaData(), sa.Column("task_id", sa.String(20)))


@pytest.mark.slow
def test_lockbox_agrees_with_the_model(db_url):
    engine = make_engine(db_url)
    if engine.dialect.name == "postgresql":
        # Durability is not under test here; skipping the fsync per commit makes the run several times faster.
        sa.event.listen(engine, "connect", lambda dbapi_conn, _: dbapi_conn.cursor().execute("SET synchronous_commit TO off"))
    TaskLockbox(engine).create_tables()
    PUBLISHED.create(engine)
    LockboxMachine.engine = engine
    try:
        run = LockboxMachine.TestCase
        run.settings = settings(
            max_examples=30, stateful_step_count=50, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        run().runTest()
    finally:
        engine.dispose()
