"""Segment allocation for appending tasks (Druid's ``segmentAllocate`` / pending segments).

An appending task asks for each new segment id instead of naming it. The rules (Druid's
``IndexerSQLMetadataStorageCoordinator.allocatePendingSegment``):

* the *used* segments of the requested interval, through the timeline, must form at most one chunk;
* the same request (sequence name plus previous id, or plus interval when lineage is not checked) gets the same
  id back: the pending row is keyed by a SHA-1 of it, so allocation is idempotent and a sequence cannot fork;
* an empty chunk gets ``numbered`` partition 0 with no core set, in the task's lock version;
* otherwise the id reuses the chunk's version with partition ``max(used or pending) + 1`` and the core partition
  count of the *committed* segments (never of pending ones, which may be stale);
* it fails when a pending or used segment in the way has a different interval, when the chunk's segments cannot be
  extended, or (classic Druid; not for APPEND locks) when the chunk's version is newer than the task's lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.exceptions import SegmentAllocationError
from druidflow.intervals import Interval, format_instant, now_ms
from druidflow.metadata.records import SegmentAllocation, segment_from_payload
from druidflow.metadata.tables import pending_segments as P
from druidflow.metadata.tables import segments as S
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.shardspec import NumberedShardSpec
from druidflow.segments.timeline import Timeline

# The version of APPEND (concurrent append) locks, druidflow.locks.APPEND_VERSION: their segments take the chunk's
# version, which is always newer.
APPEND_LOCK_VERSION = format_instant(0)


@dataclass(frozen=True)
class _Id:
    interval: Interval
    version: str
    partition_num: int


def sequence_key(
    sequence_name: str, previous_segment_id: str, interval: Interval, version: str, skip_lineage_check: bool
) -> str:
    """Druid's ``sequence_name_prev_id_sha1``: SHA-1 (upper-case hex) of the sequence name, 0xFF, then the
    previous segment id (or, when lineage is skipped, the interval's start and end as big-endian longs), 0xFF and
    the version (modern Druid adds the version so that a re-versioned chunk gets a fresh row)."""
    h = hashlib.sha1(sequence_name.encode())
    h.update(b"\xff")
    if skip_lineage_check:
        h.update(interval.start.to_bytes(8, "big", signed=True) + interval.end.to_bytes(8, "big", signed=True))
    else:
        h.update(previous_segment_id.encode())
    h.update(b"\xff")
    h.update(version.encode())
    return h.hexdigest().upper()


def allocate(
    conn: Connection,
    data_source: str,
    interval: Interval,
    *,
    sequence_name: str,
    previous_segment_id: str,
    lock_version: str,
    task_allocator_id: Optional[str],
    skip_lineage_check: bool,
) -> SegmentAllocation:
    """Allocate (or find again) the segment id for one request, inside ``conn``'s transaction."""
    if conn.dialect.name == "postgresql":
        # Two allocations in one dataSource would otherwise both pick the same next partition number.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"druidflow-allocate:{data_source}"))))
    used = _used_segments(conn, data_source, interval)
    chunks = Timeline(used).visible(interval)
    if len(chunks) > 1:
        raise SegmentAllocationError(
            f"cannot allocate a segment of dataSource {data_source!r} in {interval}: the interval overlaps "
            f"{len(chunks)} time chunks ({', '.join(f'{c.true_interval} v{c.version}' for c in chunks[:5])})"
        )
    chunk_version = chunks[0].version if chunks else None

    found = _find_existing(conn, data_source, interval, sequence_name, previous_segment_id, skip_lineage_check)
    for row in found:
        if chunk_version is None or row.version == chunk_version:
            if (row.start_ms, row.end_ms) == (interval.start, interval.end):
                return SegmentAllocation.model_validate_json(row.payload)
            raise SegmentAllocationError(
                f"sequence {sequence_name!r} (previous id {previous_segment_id!r}) already has pending segment "
                f"{row.id} for interval {Interval(row.start_ms, row.end_ms)}, not the requested {interval}"
            )

    if chunk_version is not None and chunk_version > lock_version and lock_version != APPEND_LOCK_VERSION:
        # Classic Druid's rule; the segment could never be published under this lock (lock.version >= version).
        raise SegmentAllocationError(
            f"cannot allocate a segment of dataSource {data_source!r} in {interval}: its chunk has version "
            f"{chunk_version!r}, newer than the task's lock version {lock_version!r}"
        )
    allocation = _new_id(conn, data_source, interval, chunks[0].segments if chunks else (), chunk_version, lock_version)
    key = sequence_key(sequence_name, previous_segment_id, interval, allocation.version, skip_lineage_check)
    conn.execute(
        sa.insert(P).values(
            id=allocation.id,
            dataSource=data_source,
            created_date=format_instant(now_ms()),
            start=format_instant(interval.start),
            end=format_instant(interval.end),
            start_ms=interval.start,
            end_ms=interval.end,
            version=allocation.version,
            partition_num=allocation.partition_num,
            sequence_name=sequence_name,
            sequence_prev_id="" if skip_lineage_check else previous_segment_id,
            sequence_name_prev_id_sha1=key,
            task_allocator_id=task_allocator_id,
            payload=allocation.model_dump_json().encode(),
        )
    )
    return allocation


def _used_segments(conn: Connection, data_source: str, interval: Interval) -> list[DataSegment]:
    rows = conn.execute(
        sa.select(S.c.payload).where(
            S.c.dataSource == data_source,
            S.c.used == sa.true(),
            S.c.start_ms < interval.end,
            S.c.end_ms > interval.start,
        )
    )
    return [segment_from_payload(r.payload) for r in rows]


def _find_existing(
    conn: Connection,
    data_source: str,
    interval: Interval,
    sequence_name: str,
    previous_segment_id: str,
    skip_lineage_check: bool,
) -> Sequence[sa.Row[str, int, int, str, bytes]]:
    """The pending segments of the sequence: (id, start_ms, end_ms, version, payload), newest first."""
    where = [P.c.dataSource == data_source, P.c.sequence_name == sequence_name]
    if skip_lineage_check:
        where += [P.c.start_ms == interval.start, P.c.end_ms == interval.end]
    else:
        where.append(P.c.sequence_prev_id == previous_segment_id)
    query = sa.select(P.c.id, P.c.start_ms, P.c.end_ms, P.c.version, P.c.payload).where(*where)
    return conn.execute(query.order_by(P.c.version.desc(), P.c.partition_num.desc())).all()


def _new_id(
    conn: Connection,
    data_source: str,
    interval: Interval,
    chunk: Sequence[DataSegment],
    chunk_version: Optional[str],
    lock_version: str,
) -> SegmentAllocation:
    committed_max = max(chunk, key=lambda s: s.partition_num, default=None)
    pending = conn.execute(
        sa.select(P.c.start_ms, P.c.end_ms, P.c.version, P.c.partition_num).where(
            P.c.dataSource == data_source, P.c.start_ms < interval.end, P.c.end_ms > interval.start
        )
    )
    candidates = [_Id(Interval(r.start_ms, r.end_ms), r.version, r.partition_num) for r in pending]
    if committed_max is not None:
        candidates.append(_Id(committed_max.interval, committed_max.version, committed_max.partition_num))
    if chunk_version is not None:
        candidates = [c for c in candidates if c.version == chunk_version]
    overall_max = max(candidates, key=lambda c: (c.version, c.partition_num), default=None)

    if overall_max is None:
        _refuse_version_clash(conn, data_source, interval, lock_version)
        return _allocation(data_source, interval, lock_version, 0, 0)
    if overall_max.interval != interval:
        raise SegmentAllocationError(
            f"cannot allocate a segment of dataSource {data_source!r} in {interval}: segment "
            f"{overall_max.interval} version {overall_max.version!r} partition {overall_max.partition_num} "
            "is in the way with a different interval"
        )
    if committed_max is not None and not committed_max.shard_spec.extendable:
        raise SegmentAllocationError(
            f"cannot append to dataSource {data_source!r} in {interval}: segment {committed_max.id} has a "
            f"{committed_max.shard_spec.type!r} shard spec that cannot be extended"
        )
    partition = overall_max.partition_num + 1
    core = committed_max.shard_spec.core_partitions if committed_max is not None else 0
    # Never hand out an id that is still in the segments table as an unused row (Druid's secondary-allocation check).
    taken = conn.execute(
        sa.select(sa.func.max(S.c.partition_num)).where(
            S.c.dataSource == data_source,
            S.c.start_ms == interval.start,
            S.c.end_ms == interval.end,
            S.c.version == overall_max.version,
        )
    ).scalar()
    if taken is not None:
        partition = max(partition, taken + 1)
    return _allocation(data_source, interval, overall_max.version, partition, core)


def _refuse_version_clash(conn: Connection, data_source: str, interval: Interval, version: str) -> None:
    clash = conn.execute(
        sa.select(sa.func.count()).where(
            S.c.dataSource == data_source,
            S.c.start_ms == interval.start,
            S.c.end_ms == interval.end,
            S.c.version == version,
        )
    ).scalar()
    if clash:
        raise SegmentAllocationError(
            f"cannot allocate the first segment of dataSource {data_source!r} in {interval} with version "
            f"{version!r}: {clash} unused segment(s) of that version and interval exist; kill them first"
        )


def _allocation(data_source: str, interval: Interval, version: str, partition: int, core: int) -> SegmentAllocation:
    return SegmentAllocation(
        data_source=data_source,
        interval=interval,
        version=version,
        shard_spec=NumberedShardSpec(partition_num=partition, partitions=core),
    )
