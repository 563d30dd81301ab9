"""Druid's TaskLockbox, kept in the metadata database so that workers on many machines share one truth.

Why this is safe
----------------
Every change to the locks of a dataSource (acquire, revoke, release, lease expiry, heartbeat) and every
critical section runs in ONE database transaction that first takes that dataSource's mutex: its row in
``druidflow_lock_datasources``.

* PostgreSQL: ``SELECT ... FOR UPDATE`` on that row (inserted first with ``ON CONFLICT DO NOTHING`` if missing).
  The row lock is held until the transaction commits or rolls back, so transactions on one dataSource run one
  after the other, exactly like Druid's in-memory mutex, but across processes and machines. Connections run at
  READ COMMITTED, where every statement sees everything committed before it: once a transaction holds the
  mutex, it reads the state its predecessor committed, decides, writes, and commits before the next one reads.
  A crash releases the row lock with the connection, never leaving a half-made change.
* SQLite: ``make_engine`` starts every transaction with ``BEGIN IMMEDIATE``, which takes the database's single
  write lock, so all lockbox transactions (all dataSources) are serialised.

Consequences: the "read the locks, check compatibility, write" sequence can never interleave with another one on
the same dataSource, so two conflicting locks are never granted. Revocation needs the mutex, and the critical
section holds it while the caller inserts its segments on the same connection, so no lock can be revoked (or
expire) between the check "my lock is valid" and the commit of the segments: the check and the insert are one
atomic transaction. A transaction that needs several dataSources takes their mutexes in sorted order, and no
statement touches lock rows before taking the mutexes, so mutex waits cannot form a cycle (no deadlock).
``lock()`` never holds a transaction while it waits: it polls ``try_lock``, each try its own short transaction.

Leases: each (lock, task) row carries ``lease_expires_ms``; ``heartbeat`` pushes it forward. A row whose lease
has run out counts as released. The first transaction that relies on that (a request over its interval, or a
heartbeat or critical section of its task) sets ``expired_at_ms`` and records an ``expire`` event, under the
mutex; from then on nothing (not even a late heartbeat from a machine whose clock is behind) brings it back.
Expired rows stay visible as expired for ``expired_retention_seconds``, then a release on their dataSource
deletes them. The lease SQL and the background heartbeat are in :mod:`druidflow.locks.leases`.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from druidflow.exceptions import LockNotHeldError, LockRevokedError, SpecError
from druidflow.intervals import Interval, format_instant, now_ms, parse_instant
from druidflow.locks import leases
from druidflow.locks.fast_path import FastPath, install
from druidflow.locks.lock import APPEND_VERSION, LockResult, LockType, TaskLock
from druidflow.locks.lock_rows import LockRows, database_now_ms, group_posses, is_live
from druidflow.locks.policy import DEFAULT_LOCK_TIMEOUT_SECONDS
from druidflow.locks.rules import Decision, Posse, Request, decide, supersedes
from druidflow.metadata.engine import make_engine
from druidflow.metadata.tables import lock_datasources, lock_events, metadata, task_locks

DEFAULT_LEASE_SECONDS = 120.0
DEFAULT_EXPIRED_RETENTION_SECONDS = 24 * 3600.0

LOCK_TABLES = (lock_datasources, task_locks, lock_events)

_T = task_locks.c
_inside = threading.local()  # set while this thread runs the body of a critical section


@dataclass(frozen=True)
class CriticalSection:
    """What the body of :meth:`TaskLockbox.critical_section` gets.

    ``connection`` is inside the transaction that holds the dataSource mutex: write the segments on it, and
    they commit together with the lock check when the block exits normally (and roll back if it raises).
    ``locks`` are the task's valid locks covering the requested intervals.
    """

    connection: Connection
    task_id: str
    datasource: str
    locks: tuple[TaskLock, ...]

    def lock_for(self, interval: Interval | str) -> TaskLock:
        """The lock (highest version first) covering ``interval``; publish checks ``lock.version >= segment.version``."""
        iv = Interval.parse(interval, "interval")
        covering = [lk for lk in self.locks if lk.interval.contains(iv)]
        if not covering:
            raise LockNotHeldError(f"task {self.task_id} holds no lock on {self.datasource} covering {iv}")
        return max(covering, key=lambda lk: lk.version)


class TaskLockbox:
    """Time-chunk task locks with priorities, preemption and leases, shared through the metadata database.

    ``url_or_engine`` is an SQLAlchemy URL or Engine (PostgreSQL or SQLite). ``lease_seconds`` is how long a
    lock survives without a heartbeat. ``clock`` returns epoch milliseconds (injectable for tests); it stamps
    versions and leases.
    """

    def __init__(
        self,
        url_or_engine: Union[str, Engine],
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        *,
        clock: Callable[[], int] = now_ms,
        expired_retention_seconds: float = DEFAULT_EXPIRED_RETENTION_SECONDS,
        max_poll_seconds: float = 0.5,
    ) -> None:
        if lease_seconds <= 0:
            raise SpecError("lease_seconds", lease_seconds, "must be positive")
        engine = make_engine(url_or_engine)
        self._dialect = engine.dialect.name
        if self._dialect == "postgresql":
            # The mutex argument needs READ COMMITTED: under REPEATABLE READ the snapshot would predate the wait.
            engine = engine.execution_options(isolation_level="READ COMMITTED")
        self.engine = engine
        self.lease_ms = int(lease_seconds * 1000)
        self.clock = clock
        self.expired_retention_ms = int(expired_retention_seconds * 1000)
        self.max_poll_seconds = max_poll_seconds
        self._rows = LockRows(self._dialect)
        # PostgreSQL: a new lock where nothing overlaps, and release_all, in one round trip each (fast_path.py).
        self._fast = FastPath(engine) if engine.dialect.driver == "psycopg2" else None
        self._purge = leases.ExpiredPurge(self.expired_retention_ms)

    # ------------------------------------------------------------------ schema

    def create_tables(self) -> None:
        """Create the three lock tables if missing (migrations do this in production; handy for tests and CLI)."""
        metadata.create_all(self.engine, tables=list(LOCK_TABLES))
        with self.engine.begin() as conn:
            install(conn)

    def close(self) -> None:
        """Close this process's connections (the fast path's own, and the engine's pool)."""
        if self._fast is not None:
            self._fast.close()
        self.engine.dispose()

    # ------------------------------------------------------------------ acquiring

    def try_lock(
        self,
        task_id: str,
        group_id: str | None = None,
        datasource: str = "",
        interval: Interval | str = "",
        lock_type: LockType | str = LockType.EXCLUSIVE,
        priority: int = 0,
    ) -> LockResult:
        """Try once to lock ``interval`` of ``datasource`` for the task; never waits for other tasks.

        Returns ``acquired`` with the lock (the same lock and version when asked again), ``revoked`` if the lock
        this request maps to was preempted, or neither (with the blocking locks in ``conflicts``).
        ``group_id`` defaults to ``task_id``.
        """
        request = self._request(task_id, group_id, datasource, interval, lock_type, priority)
        fast = self._try_new_fast(datasource, request)
        if fast is not None:
            return fast
        with self._transaction() as conn:
            last_version = self._rows.take_mutexes(conn, [datasource])[datasource]
            now = self.clock()  # read once the mutex is ours: waiting for it may have taken a while
            return self._try_lock_locked(conn, datasource, request, now, last_version)

    def lock(
        self,
        task_id: str,
        group_id: str | None = None,
        datasource: str = "",
        interval: Interval | str = "",
        lock_type: LockType | str = LockType.EXCLUSIVE,
        priority: int = 0,
        timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    ) -> LockResult:
        """Like :meth:`try_lock`, but waits up to ``timeout`` seconds for the interval to become free.

        Returns at once when acquired or revoked; after the timeout, returns the last failed answer. Between
        tries no transaction is open, so waiting blocks nobody.
        """
        self._request(task_id, group_id, datasource, interval, lock_type, priority)  # validate before waiting
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            result = self.try_lock(task_id, group_id, datasource, interval, lock_type, priority)
            remaining = deadline - time.monotonic()
            if result.acquired or result.revoked or remaining <= 0:
                return result
            time.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2, self.max_poll_seconds)

    def _request(
        self,
        task_id: str,
        group_id: str | None,
        datasource: str,
        interval: Interval | str,
        lock_type: LockType | str,
        priority: int,
    ) -> Request:
        if not task_id:
            raise SpecError("task_id", task_id, "a lock needs a task id")
        if not datasource:
            raise SpecError("datasource", datasource, "a lock needs a dataSource")
        iv = Interval.parse(interval, "interval")
        if iv.is_empty():
            raise SpecError("interval", interval, "cannot lock an empty interval")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise SpecError("priority", priority, "expected an integer")
        return Request(task_id, group_id or task_id, iv, LockType.parse(lock_type), priority)

    def _try_new_fast(self, datasource: str, request: Request) -> LockResult | None:
        """The lock as a new posse in one round trip when nothing overlaps it (PostgreSQL); None: take the general
        path, nothing was written."""
        if self._fast is None or not self._fast.available:
            return None
        _refuse_inside_critical_section()
        now = self.clock()
        append = request.type is LockType.APPEND
        version = APPEND_VERSION if append else format_instant(now)
        posse = Posse(
            uuid.uuid4().hex, request.group_id, request.interval, request.type, version, request.priority, False,
            frozenset(),
        )
        lease = now + self.lease_ms
        granted = self._fast.acquire_new(
            datasource, posse.posse_id, request.task_id, request.group_id, str(request.interval),
            request.interval.start, request.interval.end, request.type.value, version, request.priority, lease,
            format_instant(now), not append,
        )
        if not granted:
            return None
        return LockResult.ok(self._rows.posse_lock(posse, datasource, request.task_id, None, now, lease=lease))

    def _try_lock_locked(
        self, conn: Connection, datasource: str, request: Request, now: int, last_version: str
    ) -> LockResult:
        rows = conn.execute(
            sa.select(task_locks)
            .where(_T.dataSource == datasource, _T.start_ms < request.interval.end, _T.end_ms > request.interval.start)
            .order_by(_T.id)
        ).mappings().all()
        # The decision below relies on these rows' expiry: record it first (it is final from now on).
        rows = leases.record_expiries(self._rows, conn, rows, now)
        posses = group_posses(rows, now)
        decision = decide(request, list(posses.values()))

        if decision.outcome == "fail":
            blockers = tuple(
                self._rows.to_lock(r, now)
                for p in decision.blockers
                for r in rows
                if r["posse_id"] == p.posse_id and is_live(r, now)
            )
            return LockResult.fail(blockers)

        if decision.outcome == "reuse":
            posse = decision.posse
            assert posse is not None
            mine = next((r for r in rows if r["posse_id"] == posse.posse_id and r["task_id"] == request.task_id), None)
            if posse.revoked:
                return LockResult.revoked_lock(self._rows.posse_lock(posse, datasource, request.task_id, mine, now))
            if posse.priority != request.priority:
                raise SpecError(
                    "priority",
                    request.priority,
                    f"group {request.group_id} holds {posse.type.value} lock {posse.interval} at priority "
                    f"{posse.priority}; every task of a group must ask with the same priority",
                )
            lease = now + self.lease_ms
            if mine is not None and request.task_id in posse.tasks:
                conn.execute(
                    sa.update(task_locks)
                    .where(_T.id == mine["id"], _T.lease_expires_ms < lease)
                    .values(lease_expires_ms=lease)
                )
                lock = self._rows.posse_lock(posse, datasource, request.task_id, mine, now, lease=max(lease, mine["lease_expires_ms"]))
                return LockResult.ok(lock)
            if mine is not None:  # the task's lease had run out while its group kept the lock: it rejoins
                conn.execute(
                    sa.update(task_locks).where(_T.id == mine["id"]).values(lease_expires_ms=lease, expired_at_ms=None)
                )
                lock = self._rows.posse_lock(posse, datasource, request.task_id, None, now, lease=lease)
                self._rows.event(conn, now, "acquire", lock)
            else:
                lock = self._rows.acquire(conn, posse, datasource, request.task_id, lease, now, new_version=False)
        else:
            self._revoke(conn, decision, datasource, request, now)
            append = request.type is LockType.APPEND
            version = APPEND_VERSION if append else _next_version(last_version, now)
            posse = Posse(
                uuid.uuid4().hex, request.group_id, request.interval, request.type, version, request.priority,
                False, frozenset(),
            )
            lease = now + self.lease_ms
            lock = self._rows.acquire(conn, posse, datasource, request.task_id, lease, now, new_version=not append)

        # Modern Druid: a task that got an APPEND lock enclosing a smaller APPEND lock of its group leaves the latter.
        for old in posses.values():
            if request.task_id in old.tasks and old.posse_id != posse.posse_id and supersedes(posse, old):
                self._rows.delete_rows(
                    conn, [r for r in rows if r["posse_id"] == old.posse_id and r["task_id"] == request.task_id],
                    "release", now, detail=f"superseded by {lock.interval}",
                )
        return LockResult.ok(lock)

    def _revoke(self, conn: Connection, decision: Decision, datasource: str, request: Request, now: int) -> None:
        if not decision.revoke:
            return
        ids = [p.posse_id for p in decision.revoke]
        revoked = conn.execute(
            sa.update(task_locks)
            .where(_T.dataSource == datasource, _T.posse_id.in_(ids))
            .values(revoked=True)
            .returning(*task_locks.c)
        ).mappings().all()
        detail = (
            f"preempted by task {request.task_id} (group {request.group_id}, priority {request.priority}) "
            f"asking {request.type.value} on {request.interval}"
        )
        for row in sorted(revoked, key=lambda r: r["id"]):
            self._rows.event(conn, now, "revoke", self._rows.to_lock(row, now), actor=request.task_id, detail=detail)

    # ------------------------------------------------------------------ leases

    def heartbeat(self, task_id: str, *, raise_revoked: bool = False) -> int:
        """Extend the lease of every live lock of the task; returns how many. Expired locks stay expired.

        With ``raise_revoked``, a revoked lock of the task raises :class:`LockRevokedError` (after the other
        leases were extended), so that a heartbeating step can stop work that can never be published.
        """
        with self._transaction() as conn:
            datasources = self._rows.task_datasources(conn, task_id)
            if not datasources:
                return 0
            self._rows.take_mutexes(conn, datasources)
            now = self.clock()
            rows = leases.record_expiries(self._rows, conn, self._rows.task_rows(conn, task_id, datasources), now)
            extended = leases.extend(conn, task_id, datasources, now, self.lease_ms)
        revoked = [r for r in rows if r["revoked"]]
        if raise_revoked and revoked:
            lock = self._rows.to_lock(revoked[0], now)
            raise LockRevokedError(
                f"task {task_id}: its {lock.type.value} lock on {lock.datasource} {lock.interval} was revoked by a "
                "higher-priority task; nothing of it can be published"
            )
        return extended

    def check_held(self, task_id: str, datasource: str, intervals: Sequence[Interval]) -> None:
        """Raise unless the task holds a live, unrevoked lock covering each interval (a read, no mutex).

        An early check, e.g. before pushing a file: the publish critical section decides for good.
        """
        now = self.clock()
        mine = self.locks(datasource=datasource, task_id=task_id)
        for iv in intervals:
            covering = [lk for lk in mine if lk.interval.contains(iv)]
            if not covering:
                raise LockNotHeldError(f"task {task_id} holds no lock on {datasource} covering {iv}")
            if not any(lk.active and lk.lease_expires_ms > now for lk in covering):
                lock = covering[0]
                raise LockRevokedError(
                    f"task {task_id}: its lock on {datasource} {lock.interval} is {lock.state}; nothing of it can be "
                    "published"
                )

    @contextmanager
    def keep_alive(self, task_id: str, every: float | None = None) -> Iterator[None]:
        """Heartbeat the task's locks from a background thread while the block runs (every lease/3 by default)."""
        period = every if every is not None else self.lease_ms / 3000.0
        with leases.keep_alive(lambda t: self.heartbeat(t, raise_revoked=True), task_id, period):
            yield

    # ------------------------------------------------------------------ critical section

    @contextmanager
    def critical_section(
        self, task_id: str, intervals: Sequence[Interval | str], datasource: str | None = None
    ) -> Iterator[CriticalSection]:
        """Run the block while the task's locks on ``intervals`` are held, valid, and cannot be revoked.

        Raises :class:`LockRevokedError` if a covering lock was revoked or its lease ran out, and
        :class:`LockNotHeldError` if the task holds no lock covering an interval. The block gets
        :class:`CriticalSection`; what it writes on ``cs.connection`` commits with the lock check, atomically.
        ``datasource`` is needed only if the task holds locks on several dataSources.
        """
        if isinstance(intervals, (str, Interval)):
            intervals = [intervals]
        wanted = [Interval.parse(iv, f"intervals[{i}]") for i, iv in enumerate(intervals)]
        if not wanted:
            raise SpecError("intervals", intervals, "a critical section needs at least one interval")
        with self._transaction() as conn:
            if datasource is None:
                held = self._rows.task_datasources(conn, task_id)
                if not held:
                    raise LockNotHeldError(f"task {task_id} holds no lock")
                if len(held) > 1:
                    raise SpecError("datasource", None, f"task {task_id} holds locks on {', '.join(held)}; name one")
                datasource = held[0]
            self._rows.take_mutexes(conn, [datasource])
            now = self.clock()
            rows = leases.record_expiries(self._rows, conn, self._rows.task_rows(conn, task_id, [datasource]), now)
            locks = [self._rows.to_lock(r, now) for r in rows]
            valid: dict[str, TaskLock] = {}
            revoked: list[str] = []
            missing: list[str] = []
            for iv in wanted:
                covering = [lk for lk in locks if lk.interval.contains(iv)]
                live = [lk for lk in covering if not lk.expired]
                if not covering:
                    missing.append(f"no lock covering {iv}")
                elif not live:
                    revoked.append(f"the lease of {covering[0].interval} ran out at {covering[0].lease_expires}")
                elif any(lk.revoked for lk in live):
                    revoked.append(f"lock {next(lk for lk in live if lk.revoked).interval} was revoked")
                else:
                    valid.update((lk.posse_id, lk) for lk in live)
            if revoked:
                raise LockRevokedError(f"task {task_id} on {datasource}: " + "; ".join(revoked + missing))
            if missing:
                raise LockNotHeldError(f"task {task_id} on {datasource}: " + "; ".join(missing))
            leases.extend(conn, task_id, [datasource], now, self.lease_ms)
            _inside.critical_section = True
            try:
                yield CriticalSection(conn, task_id, datasource, tuple(valid.values()))
            finally:
                _inside.critical_section = False

    @contextmanager
    def mutex(self, datasource: str) -> Iterator[tuple[Connection, int]]:
        """Hold the dataSource's mutex for the block: no lock changes and no publish (critical section) on it can
        run meanwhile. Yields the connection (read lock rows and segments on it; do not call the lockbox) and the
        database clock's now in epoch ms, which does not depend on this machine's clock."""
        if not datasource:
            raise SpecError("datasource", datasource, "a mutex needs a dataSource")
        with self._transaction() as conn:
            self._rows.take_mutexes(conn, [datasource])
            yield conn, database_now_ms(conn)

    # ------------------------------------------------------------------ releasing

    def release(self, task_id: str, interval: Interval | str, datasource: str | None = None) -> int:
        """Release the task's locks on exactly ``interval`` (Druid's ``unlock``); returns how many were held."""
        iv = Interval.parse(interval, "interval")
        return self._remove(
            task_id, "release", datasource=datasource,
            where=[_T.start_ms == iv.start, _T.end_ms == iv.end],
        )

    def release_all(self, task_id: str) -> int:
        """Release every lock of the task (Druid's ``remove`` when a task ends); returns how many."""
        if self._fast is not None and self._fast.available:
            _refuse_inside_critical_section()
            now = self.clock()
            recent = self._purge.recent(now)
            done = self._fast.release_all(task_id, format_instant(now), now - self.expired_retention_ms, recent)
            if done is not None:
                released, purged = done
                self._purge.purged(purged, now)
                return released
        return self._remove(task_id, "release")

    def force_release(self, task_id: str, actor: str, reason: str) -> int:
        """Admin action: drop every lock of the task at once, recorded with ``actor`` and ``reason``.

        The task, if still running, will find at its next publish that it holds nothing.
        """
        if not actor or not reason:
            raise SpecError("actor" if not actor else "reason", actor if not actor else reason, "required for a force release")
        return self._remove(task_id, "force_release", actor=actor, detail=reason)

    def _remove(
        self,
        task_id: str,
        event: str,
        *,
        datasource: str | None = None,
        where: Sequence[Any] = (),
        actor: str | None = None,
        detail: str | None = None,
    ) -> int:
        with self._transaction() as conn:
            datasources = [datasource] if datasource else self._rows.task_datasources(conn, task_id, where)
            if not datasources:
                return 0
            self._rows.take_mutexes(conn, datasources)
            now = self.clock()
            removed = 0
            for ds in datasources:
                self._purge.purge(conn, ds, now)
                removed += self._rows.delete_task_rows(conn, task_id, ds, where, event, now, actor=actor, detail=detail)
            return removed

    # ------------------------------------------------------------------ reading

    def locks(self, datasource: str | None = None, task_id: str | None = None) -> list[TaskLock]:
        """Every lock row, revoked and expired ones included, by dataSource, interval start and age."""
        query = sa.select(task_locks).order_by(_T.dataSource, _T.start_ms, _T.end_ms, _T.id)
        if datasource is not None:
            query = query.where(_T.dataSource == datasource)
        if task_id is not None:
            query = query.where(_T.task_id == task_id)
        with self._connection() as conn:
            now = self.clock()
            return [self._rows.to_lock(r, now) for r in conn.execute(query).mappings()]

    def events(
        self, datasource: str | None = None, task_id: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The lock audit trail, oldest first (the newest ``limit`` if given)."""
        query = sa.select(lock_events).order_by(lock_events.c.id.desc() if limit else lock_events.c.id)
        if datasource is not None:
            query = query.where(lock_events.c.dataSource == datasource)
        if task_id is not None:
            query = query.where(lock_events.c.task_id == task_id)
        if limit:
            query = query.limit(limit)
        with self._connection() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return rows[::-1] if limit else rows

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self._connection() as conn, conn.begin():  # SQLite: BEGIN IMMEDIATE (see make_engine)
            yield conn

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        _refuse_inside_critical_section()
        with self.engine.connect() as conn:
            yield conn


def _refuse_inside_critical_section() -> None:
    if getattr(_inside, "critical_section", False):
        # A second connection would wait for the mutex this thread already holds: a deadlock with itself.
        raise RuntimeError("lockbox called from inside a critical section; use cs.connection and cs.locks there")


def _next_version(last: str, now: int) -> str:
    """``now`` as an ISO version, or 1 ms after the last version of the dataSource if the clock is behind it."""
    return format_instant(now if not last else max(now, parse_instant(last) + 1))
