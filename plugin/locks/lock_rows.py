"""The lockbox's rows in the database: the per-dataSource mutex, lock rows (one per lock and task) and the audit
trail, and how they become :class:`TaskLock` and :class:`Posse` values.

On PostgreSQL the writes of one step are one statement (data-modifying CTEs): an acquire's version bump, lock row
and ``acquire`` event; a release's delete and its events. A round trip is most of a lock transaction's cost when
many processes share two cores, so fewer statements is more pairs per second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.exceptions import SpecError
from druidflow.intervals import Interval, format_instant
from druidflow.locks.lock import LockType, TaskLock
from druidflow.locks.rules import Posse
from druidflow.metadata.tables import lock_datasources, lock_events, task_locks

_T = task_locks.c


class LockRows:
    """The SQL of the lock tables for one dialect (PostgreSQL or SQLite)."""

    def __init__(self, dialect: str) -> None:
        self._dialect = dialect

    def acquire(
        self, conn: Connection, posse: Posse, datasource: str, task_id: str, lease: int, now: int, *, new_version: bool
    ) -> TaskLock:
        """Add the task to ``posse`` (a new lock row) with its ``acquire`` event; with ``new_version``, also record the
        posse's version as the dataSource's last. Returns the task's lock. One statement on PostgreSQL."""
        lock = self.posse_lock(posse, datasource, task_id, None, now, lease=lease)
        statements: list[sa.Insert | sa.Update] = [
            sa.insert(task_locks).values(
                posse_id=posse.posse_id,
                task_id=task_id,
                group_id=posse.group_id,
                dataSource=datasource,
                interval=str(posse.interval),
                start_ms=posse.interval.start,
                end_ms=posse.interval.end,
                type=posse.type.value,
                version=posse.version,
                priority=posse.priority,
                revoked=posse.revoked,
                lease_expires_ms=lease,
                expired_at_ms=None,
                created_date=format_instant(now),
            )
        ]
        if new_version:
            statements.append(
                sa.update(lock_datasources)
                .where(lock_datasources.c.dataSource == datasource)
                .values(last_version=posse.version)
            )
        event = self._event_insert(now, "acquire", lock)
        if self._dialect == "postgresql":
            for i, statement in enumerate(statements):
                event = event.add_cte(statement.cte(f"w{i}"))
            conn.execute(event)
        else:
            for statement in [*statements, event]:
                conn.execute(statement)
        return lock

    def take_mutexes(self, conn: Connection, datasources: Iterable[str]) -> dict[str, str]:
        """Lock the dataSources' mutex rows in sorted order (so that transactions never wait on each other in a
        cycle); returns each dataSource's last lock version."""
        last_versions = {}
        for ds in sorted(set(datasources)):
            query = sa.select(lock_datasources.c.last_version).where(lock_datasources.c.dataSource == ds).with_for_update()
            last = conn.execute(query).scalar_one_or_none()
            if last is None:
                conn.execute(self.insert_ignore(ds))
                last = conn.execute(query).scalar_one()
            last_versions[ds] = last
        return last_versions

    def insert_ignore(self, datasource: str) -> sa.Insert:
        values = {"dataSource": datasource, "last_version": ""}
        if self._dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(lock_datasources).values(**values).on_conflict_do_nothing(index_elements=["dataSource"])
        if self._dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(lock_datasources).values(**values).on_conflict_do_nothing(index_elements=["dataSource"])
        raise SpecError("metadata_url", self._dialect, "the lockbox supports PostgreSQL and SQLite")  # pragma: no cover - only these two

    def task_rows(self, conn: Connection, task_id: str, datasources: Sequence[str]) -> list[Any]:
        query = sa.select(task_locks).where(_T.task_id == task_id, _T.dataSource.in_(list(datasources))).order_by(_T.id)
        return list(conn.execute(query).mappings())

    def task_datasources(self, conn: Connection, task_id: str, where: Sequence[Any] = ()) -> list[str]:
        query = sa.select(_T.dataSource).where(_T.task_id == task_id, *where).distinct()
        return sorted(conn.execute(query).scalars())

    def to_lock(self, row: Any, now: int) -> TaskLock:
        return TaskLock(
            task_id=row["task_id"],
            group_id=row["group_id"],
            datasource=row["dataSource"],
            interval=Interval(row["start_ms"], row["end_ms"]),
            type=LockType(row["type"]),
            version=row["version"],
            priority=row["priority"],
            revoked=bool(row["revoked"]),
            lease_expires_ms=row["lease_expires_ms"],
            expired=not is_live(row, now),
            posse_id=row["posse_id"],
        )

    def posse_lock(
        self, posse: Posse, datasource: str, task_id: str, row: Any, now: int, lease: int | None = None
    ) -> TaskLock:
        lease_ms = lease if lease is not None else (row["lease_expires_ms"] if row is not None else 0)
        return TaskLock(
            task_id=task_id,
            group_id=posse.group_id,
            datasource=datasource,
            interval=posse.interval,
            type=posse.type,
            version=posse.version,
            priority=posse.priority,
            revoked=posse.revoked,
            lease_expires_ms=lease_ms,
            expired=lease is None and row is not None and not is_live(row, now),
            posse_id=posse.posse_id,
        )

    def event(
        self,
        conn: Connection,
        now: int,
        event: str,
        lock: TaskLock,
        actor: str | None = None,
        detail: str | None = None,
    ) -> None:
        conn.execute(self._event_insert(now, event, lock, actor, detail))

    @staticmethod
    def _event_insert(
        now: int, event: str, lock: TaskLock, actor: str | None = None, detail: str | None = None
    ) -> sa.Insert:
        return sa.insert(lock_events).values(
            at=format_instant(now),
            event=event,
            task_id=lock.task_id,
            group_id=lock.group_id,
            dataSource=lock.datasource,
            interval=str(lock.interval),
            type=lock.type.value,
            version=lock.version,
            priority=lock.priority,
            posse_id=lock.posse_id,
            actor=actor,
            detail=detail,
        )

    def delete_task_rows(
        self,
        conn: Connection,
        task_id: str,
        datasource: str,
        where: Sequence[Any],
        event: str,
        now: int,
        actor: str | None = None,
        detail: str | None = None,
    ) -> int:
        """Delete the task's rows on ``datasource`` matching ``where``, each with an ``event`` (in row order);
        returns how many. One statement on PostgreSQL."""
        match = [_T.task_id == task_id, _T.dataSource == datasource, *where]
        if self._dialect != "postgresql":
            rows = conn.execute(sa.select(task_locks).where(*match).order_by(_T.id)).mappings().all()
            return self.delete_rows(conn, rows, event, now, actor=actor, detail=detail)
        deleted = sa.delete(task_locks).where(*match).returning(*task_locks.c).cte("deleted")
        events = sa.select(
            sa.literal(format_instant(now)), sa.literal(event), deleted.c.task_id, deleted.c.group_id,
            deleted.c.dataSource, deleted.c.interval, deleted.c.type, deleted.c.version, deleted.c.priority,
            deleted.c.posse_id, sa.literal(actor, sa.String), sa.literal(detail, sa.Text),
        ).order_by(deleted.c.id)
        columns = ["at", "event", "task_id", "group_id", "dataSource", "interval", "type", "version", "priority",
                   "posse_id", "actor", "detail"]
        return int(conn.execute(sa.insert(lock_events).from_select(columns, events)).rowcount)

    def delete_rows(
        self,
        conn: Connection,
        rows: Sequence[Any],
        event: str,
        now: int,
        actor: str | None = None,
        detail: str | None = None,
    ) -> int:
        if not rows:
            return 0
        conn.execute(sa.delete(task_locks).where(_T.id.in_([r["id"] for r in rows])))
        for row in rows:
            self.event(conn, now, event, self.to_lock(row, now), actor=actor, detail=detail)
        return len(rows)


def database_now_ms(conn: Connection) -> int:
    """The database server's clock, in epoch milliseconds."""
    if conn.dialect.name == "postgresql":
        query = sa.text("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)")
    else:
        query = sa.text("SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)")
    return int(conn.execute(query).scalar_one())


def is_live(row: Any, now: int) -> bool:
    return row["expired_at_ms"] is None and row["lease_expires_ms"] > now


def group_posses(rows: Sequence[Any], now: int) -> dict[str, Posse]:
    """Group lock rows into the posses that exist (those with a live task), oldest first."""
    members: dict[str, list[Any]] = {}
    for row in rows:
        members.setdefault(row["posse_id"], []).append(row)
    posses: dict[str, Posse] = {}
    for posse_id, group in members.items():
        live = frozenset(r["task_id"] for r in group if is_live(r, now))
        if not live:
            continue
        first = group[0]
        posses[posse_id] = Posse(
            posse_id=posse_id,
            group_id=first["group_id"],
            interval=Interval(first["start_ms"], first["end_ms"]),
            type=LockType(first["type"]),
            version=first["version"],
            priority=first["priority"],
            revoked=any(bool(r["revoked"]) for r in group),
            tasks=live,
        )
    return posses
