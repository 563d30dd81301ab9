"""How a segment is a row of ``druidflow_segments``: the row written at publish, the WHERE clauses the store reads
by, and the narrow-column read that lets visibility run without parsing a payload.

The narrow columns (``start_ms``, ``end_ms``, ``version``, ``partition_num``, ``shard_type``, ``core_partitions``,
``size``, ``num_rows``) are all the timeline needs; a payload is read, by id, only for a segment handed out in full.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Optional

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.exceptions import RetryableError, SegmentConflictError, SpecError
from druidflow.intervals import Interval, format_instant
from druidflow.metadata.load_path import load_path
from druidflow.metadata.records import segment_from_payload
from druidflow.metadata.tables import segments as S
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.timeline import SegmentColumns, core_partitions_column

# Rows per statement for IN lists and bulk inserts: well under SQLite's bound-parameter limit.
BATCH = 500

SEGMENT_STATE = (S.c.used, S.c.used_status_last_updated, S.c.unused_reason, S.c.created_date, S.c.kill_task_id)

_COLUMNS = (
    S.c.start_ms,
    S.c.end_ms,
    S.c.version,
    S.c.partition_num,
    sa.func.coalesce(S.c.core_partitions, -1),
    sa.case((S.c.shard_type == "tombstone", 1), else_=0),
    S.c.size,
    S.c.num_rows,
)


class SegmentsChangedError(RetryableError):
    """Segment rows went away between reading a timeline's columns and loading its segments (a concurrent kill)."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many objects at once.

    Allocating hundreds of thousands of objects triggers full collections that rescan every live object (a
    publish or read of 100k segments); the objects built here hold no cycles, so pausing only skips wasted work.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------------- writing


def unique_by_id(segments: list[DataSegment]) -> dict[str, DataSegment]:
    batch: dict[str, DataSegment] = {}
    for s in segments:
        seen = batch.setdefault(s.id, s)
        if seen is not s and seen.payload() != s.payload():
            raise SegmentConflictError(f"segment {s.id} appears twice in one publish with different payloads")
    return batch


def payload_bytes(segment: DataSegment) -> bytes:
    """``segment.payload()`` as compact JSON; the interval string comes from a cache (publishes repeat intervals)."""
    data = segment.model_dump(exclude={"interval"})
    iv = segment.interval
    data = {"dataSource": data.pop("dataSource"), "interval": f"{iso(iv.start)}/{iso(iv.end)}", **data}
    data["identifier"] = segment.id
    return json.dumps(data, separators=(",", ":")).encode()


def same_payload(stored: bytes, new: bytes) -> bool:
    return stored == new or json.loads(stored) == json.loads(new)


def segment_row(segment: DataSegment, payload: bytes, *, used: bool, now: str) -> dict[str, Any]:
    iv = segment.interval
    spec = segment.shard_spec
    core = core_partitions_column(spec)
    return {
        "id": segment.id,
        "dataSource": segment.data_source,
        "created_date": now,
        "start": iso(iv.start),
        "end": iso(iv.end),
        "start_ms": iv.start,
        "end_ms": iv.end,
        "partitioned": spec.partitioned,
        "version": segment.version,
        "partition_num": segment.partition_num,
        "used": used,
        "used_status_last_updated": now,
        "unused_reason": None if used else "overshadowed",
        "kill_task_id": None,
        "size": segment.size,
        "num_rows": segment.num_rows,
        "load_path": load_path(segment.load_spec),
        "payload": payload,
        "shard_type": spec.type,
        "core_partitions": None if core < 0 else core,
    }


# Segments of one publish share few distinct bounds; formatting each once matters at 100k segments.
iso = lru_cache(maxsize=65536)(format_instant)


# ---------------------------------------------------------------------------------------------------- reading


def where(data_source: str, interval: Optional[Interval], contained: bool) -> list[Any]:
    clauses: list[Any] = [S.c.dataSource == data_source]
    if interval is not None:
        if contained:
            clauses += [S.c.start_ms >= interval.start, S.c.end_ms <= interval.end]
        else:
            clauses += [S.c.start_ms < interval.end, S.c.end_ms > interval.start]
    return clauses


def ordered(query: sa.Select) -> sa.Select:
    return query.order_by(S.c.start_ms, S.c.end_ms, S.c.version, S.c.partition_num)


def chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def used_columns(conn: Connection, data_source: str, interval: Optional[Interval]) -> SegmentColumns:
    """The narrow columns of the used segments of ``data_source`` overlapping ``interval`` (all when None)."""
    query = sa.select(*_COLUMNS).where(*where(data_source, interval, False), S.c.used == sa.true())
    # The driver's tuples, not SQLAlchemy rows: these columns need no result processing, and 1M rows of it cost.
    rows = conn.execute(query).cursor.fetchall()
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return SegmentColumns(empty, empty, [], empty, empty, np.zeros(0, dtype=bool), empty, empty)
    start, end, version, part, core, tomb, size, num_rows = zip(*rows)
    del rows
    return SegmentColumns(
        start=np.array(start, dtype=np.int64),
        end=np.array(end, dtype=np.int64),
        version=version,
        partition=np.array(part, dtype=np.int64),
        core=np.array(core, dtype=np.int64),
        tombstone=np.array(tomb, dtype=bool),
        size=np.array(size, dtype=np.int64),
        num_rows=np.array(num_rows, dtype=np.int64),
    )


def load_segments(conn: Connection, data_source: str, cols: SegmentColumns, rows: list[int]) -> list[DataSegment]:
    """The segments at ``rows`` of ``cols`` (read by :func:`used_columns`), from their payloads, in one query."""
    ids = [segment_id_at(data_source, cols, r) for r in rows]
    if conn.dialect.name == "postgresql":
        query = sa.text(f"SELECT id, payload FROM {S.name} WHERE id = ANY(:ids)").bindparams(ids=ids)
    else:  # one JSON array parameter instead of an IN list bounded by SQLite's parameter limit
        query = sa.text(
            f"SELECT id, payload FROM {S.name} WHERE id IN (SELECT value FROM json_each(:ids))"
        ).bindparams(ids=json.dumps(ids))
    payloads = dict(conn.execute(query).cursor.fetchall())
    missing = [i for i in ids if i not in payloads]
    if missing:
        raise SegmentsChangedError(f"{len(missing)} segment(s) were deleted while being read, e.g. {missing[0]}")
    with gc_paused():
        # psycopg2 hands bytea out as memoryview
        return [segment_from_payload(p if isinstance(p := payloads[i], bytes) else bytes(p)) for i in ids]


def segment_id_at(data_source: str, cols: SegmentColumns, row: int) -> str:
    """The id of the segment at ``row`` of ``cols`` (Druid's rule: partition 0 has no suffix)."""
    base = f"{data_source}_{iso(int(cols.start[row]))}_{iso(int(cols.end[row]))}_{cols.version[row]}"
    part = int(cols.partition[row])
    return base if part == 0 else f"{base}_{part}"


def check_reason(reason: str) -> None:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 64:
        raise SpecError("reason", reason, "a reason is a non-empty string of at most 64 characters")


def insert_ignore(conn: Connection, table: sa.Table, row: dict[str, Any], key: str) -> Any:
    """INSERT that does nothing when ``key`` is already taken (ON CONFLICT DO NOTHING on both dialects)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).values(**row).on_conflict_do_nothing(index_elements=[key])
