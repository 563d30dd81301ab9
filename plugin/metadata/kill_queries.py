"""The segment-table statements that deleting data needs: kill candidates, claims, shared files, skip counts.

Everything here runs on a caller's :class:`~sqlalchemy.engine.Connection`, so the kill task decides what commits
together (a claim runs inside the lock's critical section; a row delete in a transaction of its own). Rows are
read as plain tuples, never as parsed payloads, except where the loadSpec itself is needed (the files of one
batch): that keeps a kill over 100k segments cheap. Every IN list is cut into chunks well under SQLite's bound
parameter limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.intervals import Interval
from druidflow.metadata.tables import segments as S

_CHUNK = 500
#: How many example ids a skip count carries.
SAMPLE_SIZE = 20

_ORDER = (S.c.start_ms, S.c.end_ms, S.c.version, S.c.partition_num, S.c.id)
_ROW = (S.c.id, S.c.start_ms, S.c.end_ms, S.c.version, S.c.size, S.c.load_path, S.c.used_status_last_updated, S.c.kill_task_id)


@dataclass(frozen=True)
class KillRow:
    """What a kill needs of one segment row."""

    id: str
    start_ms: int
    end_ms: int
    version: str
    size: int
    load_path: str
    used_status_last_updated: str
    kill_task_id: Optional[str]

    @property
    def interval(self) -> Interval:
        return Interval(self.start_ms, self.end_ms)


@dataclass(frozen=True)
class Sharer:
    """A row that points at the same physical file as a segment being killed."""

    id: str
    used: bool


@dataclass(frozen=True)
class SkipCount:
    """How many segments (and bytes) one reason kept out of a kill, with a few example ids."""

    segments: int
    bytes: int
    examples: tuple[str, ...]


def _rows(conn: Connection, query: sa.Select[Any]) -> list[KillRow]:
    return [KillRow(*r) for r in conn.execute(query)]


def _contained(data_source: str, interval: Interval) -> list[Any]:
    return [S.c.dataSource == data_source, S.c.start_ms >= interval.start, S.c.end_ms <= interval.end]


def _filters(versions: Optional[Sequence[str]], cutoff: Optional[str]) -> list[Any]:
    where: list[Any] = []
    if versions is not None:
        where.append(S.c.version.in_(list(versions)))
    if cutoff is not None:
        where.append(S.c.used_status_last_updated <= cutoff)
    return where


def claimed_rows(conn: Connection, data_source: str, interval: Interval, limit: Optional[int] = None) -> list[KillRow]:
    """Unused rows inside ``interval`` already claimed by a kill (this one, or one that died), oldest first."""
    query = (
        sa.select(*_ROW)
        .where(*_contained(data_source, interval), S.c.used == sa.false(), S.c.kill_task_id.is_not(None))
        .order_by(*_ORDER)
    )
    return _rows(conn, query if limit is None else query.limit(limit))


def eligible_rows(
    conn: Connection,
    data_source: str,
    interval: Interval,
    *,
    versions: Optional[Sequence[str]] = None,
    cutoff: Optional[str] = None,
    limit: Optional[int] = None,
) -> list[KillRow]:
    """Unclaimed unused rows lying entirely inside ``interval``, of ``versions`` (all when None), marked unused at
    or before ``cutoff`` (an ISO instant as stored; any time when None); oldest interval first."""
    query = (
        sa.select(*_ROW)
        .where(
            *_contained(data_source, interval),
            S.c.used == sa.false(),
            S.c.kill_task_id.is_(None),
            *_filters(versions, cutoff),
        )
        .order_by(*_ORDER)
    )
    return _rows(conn, query if limit is None else query.limit(limit))


def used_rows_inside(conn: Connection, data_source: str, interval: Interval) -> list[KillRow]:
    """Used rows lying entirely inside ``interval`` (what a kill with ``markAsUnused`` marks unused first)."""
    return _rows(conn, sa.select(*_ROW).where(*_contained(data_source, interval), S.c.used == sa.true()).order_by(*_ORDER))


def count_remaining(
    conn: Connection,
    data_source: str,
    intervals: Sequence[Interval],
    *,
    versions: Optional[Sequence[str]] = None,
    cutoff: Optional[str] = None,
) -> SkipCount:
    """Claimed rows plus eligible rows still inside any of ``intervals`` (what a stopped kill left behind)."""
    total = SkipCount(0, 0, ())
    for interval in intervals:
        claimed = sa.and_(S.c.kill_task_id.is_not(None))
        eligible = sa.and_(S.c.kill_task_id.is_(None), *_filters(versions, cutoff))
        where = [*_contained(data_source, interval), S.c.used == sa.false(), sa.or_(claimed, eligible)]
        total = _plus(total, _count(conn, where))
    return total


def claim(conn: Connection, task_id: str, ids: Sequence[str]) -> list[KillRow]:
    """Mark the rows of ``ids`` that are still unused as being deleted by ``task_id``; returns the rows it holds.

    A row that became used since it was selected is left alone (the ``used = false`` guard is re-checked by the
    UPDATE itself, so a concurrent ``mark_used`` and this claim cannot both win). A row claimed by a kill that
    died is taken over: the caller holds the lock on its interval, so that kill cannot be running any more.
    """
    for chunk in _chunks(ids):
        conn.execute(sa.update(S).where(S.c.id.in_(chunk), S.c.used == sa.false()).values(kill_task_id=task_id))
    held: list[KillRow] = []
    for chunk in _chunks(ids):
        held += _rows(conn, sa.select(*_ROW).where(S.c.id.in_(chunk), S.c.kill_task_id == task_id))
    return sorted(held, key=lambda r: (r.start_ms, r.end_ms, r.version, r.id))


def load_specs(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``id -> loadSpec`` of the rows of ``ids`` (read from their payloads)."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        for r in conn.execute(sa.select(S.c.id, S.c.payload).where(S.c.id.in_(chunk))):
            out[r.id] = json.loads(r.payload).get("loadSpec") or {}
    return out


def sharers(conn: Connection, paths: Sequence[str]) -> dict[str, list[Sharer]]:
    """Every row pointing at each of ``paths`` (used or not, claimed or not)."""
    out: dict[str, list[Sharer]] = {p: [] for p in paths}
    for chunk in _chunks(sorted(set(paths))):
        for r in conn.execute(sa.select(S.c.load_path, S.c.id, S.c.used).where(S.c.load_path.in_(chunk))):
            out[r.load_path].append(Sharer(r.id, bool(r.used)))
    return out


def referenced_paths(conn: Connection, paths: Sequence[str]) -> set[str]:
    """Those of ``paths`` that some segment row (of any dataSource, in any state) points at."""
    found: set[str] = set()
    for chunk in _chunks(sorted(set(paths))):
        found.update(r[0] for r in conn.execute(sa.select(S.c.load_path).distinct().where(S.c.load_path.in_(chunk))))
    return found


def delete_claimed(conn: Connection, task_id: str, ids: Sequence[str]) -> int:
    """Delete the rows of ``ids`` that ``task_id`` holds; returns how many went."""
    return sum(
        conn.execute(sa.delete(S).where(S.c.id.in_(chunk), S.c.kill_task_id == task_id)).rowcount for chunk in _chunks(ids)
    )


def skip_counts(
    conn: Connection,
    data_source: str,
    interval: Interval,
    *,
    versions: Optional[Sequence[str]] = None,
    cutoff: Optional[str] = None,
) -> dict[str, SkipCount]:
    """What a kill of ``interval`` leaves alone, by reason, before it starts.

    ``used``: used segments overlapping the interval; ``partlyOutsideInterval``: unused segments overlapping it
    without lying inside it; ``versionNotSelected``: unused segments inside it of other versions;
    ``markedUnusedTooRecently``: unused segments inside it marked unused after ``cutoff``. Rows claimed by a kill
    that died are never skipped (they are finished whatever the filters say). Reasons with no segment are left out.
    """
    overlaps = [S.c.dataSource == data_source, S.c.start_ms < interval.end, S.c.end_ms > interval.start]
    inside = [*_contained(data_source, interval), S.c.used == sa.false(), S.c.kill_task_id.is_(None)]
    out = {
        "used": _count(conn, [*overlaps, S.c.used == sa.true()]),
        "partlyOutsideInterval": _count(
            conn,
            [*overlaps, S.c.used == sa.false(), sa.or_(S.c.start_ms < interval.start, S.c.end_ms > interval.end)],
        ),
    }
    if versions is not None:
        out["versionNotSelected"] = _count(conn, [*inside, S.c.version.not_in(list(versions))])
    if cutoff is not None:
        version_ok = [S.c.version.in_(list(versions))] if versions is not None else []
        out["markedUnusedTooRecently"] = _count(conn, [*inside, *version_ok, S.c.used_status_last_updated > cutoff])
    return {k: v for k, v in out.items() if v.segments}


def used_row_arrays(conn: Connection, data_source: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(ids, starts, ends)`` of every used segment of ``data_source``: what retention rules are evaluated on."""
    rows = conn.execute(
        sa.select(S.c.id, S.c.start_ms, S.c.end_ms).where(S.c.dataSource == data_source, S.c.used == sa.true())
    ).all()
    ids = [r[0] for r in rows]
    starts = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    ends = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))
    return ids, starts, ends


def unused_bounds(
    conn: Connection, data_source: str, *, cutoff: Optional[str] = None, end_before: Optional[int] = None
) -> Optional[Interval]:
    """The umbrella interval of the unused segments of ``data_source`` marked unused at or before ``cutoff`` and
    ending at or before ``end_before`` (or claimed by a kill that died), or None when there is none."""
    eligible = sa.and_(S.c.kill_task_id.is_(None), *_filters(None, cutoff))
    where = [S.c.dataSource == data_source, S.c.used == sa.false(), sa.or_(S.c.kill_task_id.is_not(None), eligible)]
    if end_before is not None:
        where.append(S.c.end_ms <= end_before)
    row = conn.execute(sa.select(sa.func.min(S.c.start_ms), sa.func.max(S.c.end_ms)).where(*where)).first()
    if row is None or row[0] is None:
        return None
    return Interval(int(row[0]), int(row[1]))


# ---------------------------------------------------------------------------------------------------- helpers


def _count(conn: Connection, where: list[Any]) -> SkipCount:
    # an aggregate without GROUP BY: always exactly one row
    row = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(S.c.size), 0)).where(*where)).one()
    count = int(row[0])
    if not count:
        return SkipCount(0, 0, ())
    examples = conn.execute(sa.select(S.c.id).where(*where).order_by(*_ORDER).limit(SAMPLE_SIZE)).scalars().all()
    return SkipCount(count, int(row[1]), tuple(examples))


def _plus(a: SkipCount, b: SkipCount) -> SkipCount:
    return SkipCount(a.segments + b.segments, a.bytes + b.bytes, (a.examples + b.examples)[:SAMPLE_SIZE])


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]
