"""Lock leases: extending them, recording for good that one ran out, forgetting long-expired rows, and the
background heartbeat that keeps a running task's leases alive.

Each (lock, task) row carries ``lease_expires_ms``. These helpers run inside a lockbox transaction that already
holds the dataSource mutexes (see :mod:`druidflow.locks.lockbox`); :func:`keep_alive` runs outside any.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.exceptions import LockRevokedError
from druidflow.intervals import format_instant
from druidflow.locks.lock_rows import LockRows
from druidflow.metadata.tables import task_locks

log = logging.getLogger(__name__)

_T = task_locks.c


def extend(conn: Connection, task_id: str, datasources: Iterable[str], now: int, lease_ms: int) -> int:
    """Push the lease of every live lock row of the task on ``datasources`` to ``now + lease_ms``; returns how
    many rows. Expired rows stay expired, and a lease is never shortened."""
    lease = now + lease_ms
    result = conn.execute(
        sa.update(task_locks)
        .where(
            _T.task_id == task_id,
            _T.dataSource.in_(list(datasources)),
            _T.expired_at_ms.is_(None),
            _T.lease_expires_ms > now,
        )
        # Never shorten a lease (another machine's clock may be ahead of ours).
        .values(lease_expires_ms=sa.case((_T.lease_expires_ms < lease, lease), else_=_T.lease_expires_ms))
    )
    return result.rowcount


def record_expiries(lock_rows: LockRows, conn: Connection, rows: Sequence[Any], now: int) -> list[Any]:
    """Mark the rows whose lease has run out as expired, for good, with an ``expire`` event; returns the rows
    as they now are. Called on exactly the rows a decision is about to rely on."""
    lapsed = [r for r in rows if r["expired_at_ms"] is None and r["lease_expires_ms"] <= now]
    if not lapsed:
        return list(rows)
    conn.execute(sa.update(task_locks).where(_T.id.in_([r["id"] for r in lapsed])).values(expired_at_ms=now))
    for row in lapsed:
        lock_rows.event(
            conn, now, "expire", lock_rows.to_lock(row, now),
            detail=f"lease ran out at {format_instant(row['lease_expires_ms'])}",
        )
    ids = {r["id"] for r in lapsed}
    return [{**r, "expired_at_ms": now} if r["id"] in ids else r for r in rows]


class ExpiredPurge:
    """Forgets rows expired for longer than ``retention_ms``, each dataSource at most every tenth of it (this
    process remembers when it last purged which dataSource)."""

    def __init__(self, retention_ms: int) -> None:
        self.retention_ms = retention_ms
        self._purged_at: dict[str, int] = {}  # dataSource -> when this lockbox last purged its expired rows

    def purge(self, conn: Connection, datasource: str, now: int) -> None:
        """Delete the dataSource's long-expired rows, unless this process did so less than a tenth ago."""
        if now - self._purged_at.get(datasource, now - self.retention_ms) < self.retention_ms // 10:
            return
        self._purged_at[datasource] = now
        conn.execute(
            sa.delete(task_locks).where(
                _T.dataSource == datasource,
                _T.expired_at_ms.is_not(None),
                _T.expired_at_ms < now - self.retention_ms,
            )
        )

    def recent(self, now: int) -> list[str]:
        """The dataSources purged less than a tenth of the retention ago (not due yet)."""
        due_every = self.retention_ms // 10
        return [ds for ds, at in self._purged_at.items() if now - at < due_every]

    def purged(self, datasources: Iterable[str], now: int) -> None:
        """Note that ``datasources`` were purged at ``now`` (by the fast path's own statement)."""
        self._purged_at.update((ds, now) for ds in datasources)


@contextmanager
def keep_alive(heartbeat: Callable[[str], object], task_id: str, period: float) -> Iterator[None]:
    """Call ``heartbeat(task_id)`` every ``period`` seconds from a background thread while the block runs; stop
    for good when it raises :class:`LockRevokedError`, log and go on after any other error."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(period):
            try:
                heartbeat(task_id)
            except LockRevokedError:
                log.error("task %s: a lock was revoked; its heartbeat stops (the publish will refuse)", task_id)
                return
            except Exception:
                log.warning("heartbeat of task %s failed", task_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"druidflow-heartbeat-{task_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
