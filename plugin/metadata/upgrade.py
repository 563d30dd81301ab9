"""Concurrent append and replace (Druid's ``useConcurrentLocks``): upgrading appended segments.

An APPEND-locked task and a REPLACE-locked task may work on the same interval at once. The appending task's
segments take the chunk's version *at allocation*, which the replacing task's publish then overshadows; without
more, its rows would vanish. So, as Druid's ``commitAppendSegments`` / ``commitReplaceSegments`` do, each
appended segment is also published as a copy in the REPLACE version (same file, same rows, a new partition number
after that version's core set), whichever of the two commits comes later:

* the append commits **after** the replace: the copy is made in the append's own transaction, in every newer
  version whose segments already cover the appended interval;
* the append commits **while** a REPLACE lock covering it is live and the replace has not committed yet: an entry
  ``(segment id, REPLACE version)`` goes into ``druidflow_upgrade_segments``; the replace's publish makes the copy
  in its own transaction and deletes the entries.

Both transactions run inside the lockbox critical section (the dataSource mutex), so the two cannot interleave.
A copy's interval is the replacing chunk that contains the appended segment (Druid's rule); a replacing chunk that
overlaps an appended segment without containing it cannot take the copy, and the later commit fails rather than
hide rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.exceptions import TimelineConflictError
from druidflow.intervals import Interval, format_instant, now_ms
from druidflow.metadata.records import segment_from_payload
from druidflow.metadata.tables import segments as S
from druidflow.metadata.tables import task_locks as L
from druidflow.metadata.tables import upgrade_segments as U
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.shardspec import NumberedShardSpec

REPLACE = "REPLACE"


class _Partitions:
    """Next free partition number per (interval, version), counting rows of this transaction as they are made."""

    def __init__(self, conn: Connection, data_source: str) -> None:
        self.conn = conn
        self.data_source = data_source
        self.next: dict[tuple[int, int, str], int] = {}

    def take(self, interval: Interval, version: str) -> int:
        key = (interval.start, interval.end, version)
        if key not in self.next:
            taken = self.conn.execute(
                sa.select(sa.func.max(S.c.partition_num)).where(
                    S.c.dataSource == self.data_source,
                    S.c.start_ms == interval.start,
                    S.c.end_ms == interval.end,
                    S.c.version == version,
                )
            ).scalar()
            self.next[key] = 0 if taken is None else taken + 1
        partition = self.next[key]
        self.next[key] = partition + 1
        return partition


def copies_after_append(conn: Connection, data_source: str, appended: Sequence[DataSegment]) -> list[DataSegment]:
    """For segments an APPEND-locked task is committing: their copies in every newer version that already covers
    them, and (recorded for later) the REPLACE locks that are live over them but have not published yet."""
    out: list[DataSegment] = []
    partitions = _Partitions(conn, data_source)
    now = now_ms()
    _forget_finished(conn, data_source)
    for seg in appended:
        if seg.is_tombstone:
            continue
        newer = _newer_sets(conn, data_source, seg)
        for interval, version, core in newer:
            if not interval.contains(seg.interval):
                raise TimelineConflictError(
                    f"cannot append segment {seg.id}: version {version} of {interval} replaced part of its interval "
                    "concurrently and cannot take an upgraded copy of it; nothing was published. Append with the "
                    "segment granularity of the replacing task."
                )
            out.append(_copy(seg, interval, version, partitions.take(interval, version), core))
        done = {version for _, version, _ in newer}
        for version in _live_replace_versions(conn, data_source, seg, now):
            if version not in done:
                _insert_entry(conn, data_source, seg.id, version, now)
    return out


def copies_for_replace(
    conn: Connection,
    data_source: str,
    replace_versions: Iterable[str],
    *,
    exclude: Iterable[str] = (),
) -> list[DataSegment]:
    """For a REPLACE-locked task committing its segments (already inserted on ``conn``) in ``replace_versions``:
    copies of the segments appended under its locks meanwhile, in its version. Consumes their entries.

    ``exclude`` names appended segments the replacing task read as input (their rows are already in its output).
    """
    versions = sorted(set(replace_versions))
    if not versions:
        return []
    skip = set(exclude)
    entries = conn.execute(
        sa.select(U.c.segment_id, U.c.upgrade_version)
        .where(U.c.dataSource == data_source, U.c.upgrade_version.in_(versions))
        .order_by(U.c.id)
    ).all()
    out: list[DataSegment] = []
    partitions = _Partitions(conn, data_source)
    for entry in entries:
        if entry.segment_id in skip:
            continue
        row = conn.execute(
            sa.select(S.c.payload).where(S.c.id == entry.segment_id, S.c.used == sa.true())
        ).first()
        if row is None:
            continue  # dropped or killed meanwhile: nothing to carry over
        seg = segment_from_payload(row.payload)
        target = _containing_set(conn, data_source, seg, entry.upgrade_version)
        if target is None:
            continue  # the replace wrote nothing over it: the appended segment stays visible as it is
        interval, core = target
        out.append(_copy(seg, interval, entry.upgrade_version, partitions.take(interval, entry.upgrade_version), core))
    conn.execute(sa.delete(U).where(U.c.dataSource == data_source, U.c.upgrade_version.in_(versions)))
    return out


def pending_upgrades(conn: Connection, data_source: str, version: Optional[str] = None) -> list[tuple[str, str]]:
    """``(segment id, REPLACE version)`` entries still waiting for their replace to publish."""
    query = sa.select(U.c.segment_id, U.c.upgrade_version).where(U.c.dataSource == data_source)
    if version is not None:
        query = query.where(U.c.upgrade_version == version)
    return [(r.segment_id, r.upgrade_version) for r in conn.execute(query.order_by(U.c.id))]


def forget_versions(conn: Connection, data_source: str, versions: Iterable[str]) -> int:
    """Drop the entries of REPLACE versions that will never publish (their task ended)."""
    versions = sorted(set(versions))
    if not versions:
        return 0
    return conn.execute(sa.delete(U).where(U.c.dataSource == data_source, U.c.upgrade_version.in_(versions))).rowcount


# ---------------------------------------------------------------------------------------------------- helpers


def _forget_finished(conn: Connection, data_source: str) -> None:
    """Drop entries whose REPLACE lock is gone (its task ended without publishing): nothing will consume them."""
    held = sa.select(L.c.version).where(L.c.dataSource == data_source, L.c.type == REPLACE)
    conn.execute(sa.delete(U).where(U.c.dataSource == data_source, U.c.upgrade_version.not_in(held)))


def _newer_sets(conn: Connection, data_source: str, seg: DataSegment) -> list[tuple[Interval, str, int]]:
    """``(interval, version, core partitions)`` of the used partition sets newer than ``seg`` that overlap it."""
    rows = conn.execute(
        sa.select(S.c.payload).where(
            S.c.dataSource == data_source,
            S.c.used == sa.true(),
            S.c.version > seg.version,
            S.c.start_ms < seg.interval.end,
            S.c.end_ms > seg.interval.start,
        )
    )
    sets: dict[tuple[Interval, str], int] = {}
    for r in rows:
        s = segment_from_payload(r.payload)
        key = (s.interval, s.version)
        sets[key] = max(sets.get(key, 0), s.shard_spec.core_partitions)
    return [(iv, ver, core) for (iv, ver), core in sorted(sets.items(), key=lambda kv: (kv[0][1], kv[0][0].start))]


def _containing_set(conn: Connection, data_source: str, seg: DataSegment, version: str) -> Optional[tuple[Interval, int]]:
    sets = [(iv, core) for iv, ver, core in _newer_sets(conn, data_source, seg) if ver == version]
    if not sets:
        return None
    for interval, core in sets:
        if interval.contains(seg.interval):
            return interval, core
    raise TimelineConflictError(
        f"cannot publish version {version}: segment {seg.id} was appended concurrently into its interval, and no "
        f"chunk of this version contains it ({', '.join(str(iv) for iv, _ in sets)}), so it cannot be upgraded; "
        "nothing was published. Replace with a segment granularity at least as coarse as the appended segments'."
    )


def _live_replace_versions(conn: Connection, data_source: str, seg: DataSegment, now: int) -> list[str]:
    rows = conn.execute(
        sa.select(L.c.version)
        .distinct()
        .where(
            L.c.dataSource == data_source,
            L.c.type == REPLACE,
            L.c.revoked == sa.false(),
            L.c.expired_at_ms.is_(None),
            L.c.lease_expires_ms > now,
            L.c.start_ms <= seg.interval.start,
            L.c.end_ms >= seg.interval.end,
            L.c.version > seg.version,
        )
    )
    return sorted(r.version for r in rows)


def _insert_entry(conn: Connection, data_source: str, segment_id: str, version: str, now: int) -> None:
    exists = conn.execute(
        sa.select(U.c.id).where(U.c.segment_id == segment_id, U.c.upgrade_version == version)
    ).first()
    if exists is None:
        conn.execute(
            sa.insert(U).values(
                dataSource=data_source, segment_id=segment_id, upgrade_version=version, created_date=format_instant(now)
            )
        )


def _copy(seg: DataSegment, interval: Interval, version: str, partition: int, core: int) -> DataSegment:
    return seg.model_copy(
        update={
            "interval": interval,
            "version": version,
            "shard_spec": NumberedShardSpec(partition_num=partition, partitions=core),
            "identifier": None,
        }
    )
