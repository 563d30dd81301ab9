"""How a segment is a row of ``druidflow_segments``: the row written at publish, the WHERE clauses the store reads
by, and the partition-set read that lets visibility run without parsing a payload.

The narrow columns (``start_ms``, ``end_ms``, ``version``, ``partition_num``, ``core_partitions``, ``size``,
``num_rows``) are all the timeline needs, aggregated per partition set by the database; payloads are read only for
the sets whose segments are handed out in full.
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
from druidflow.segments.timeline import SetColumns, core_partitions_column, partition_set_complete

# Rows per statement for IN lists and bulk inserts: well under SQLite's bound-parameter limit.
BATCH = 500

SEGMENT_STATE = (S.c.used, S.c.used_status_last_updated, S.c.unused_reason, S.c.created_date, S.c.kill_task_id)

# Partition sets read by their keys at most (more are read by one range query over their span).
_KEYED_SETS = 500


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
    """``segment.payload()`` as compact JSON (ASCII, non-ASCII escaped), ``identifier`` last.

    Serialised by pydantic's own JSON writer when the result is the same bytes (no unknown keys, no stored
    identifier, all ASCII: the common case, 100k times per large publish); otherwise through a dict, with the
    interval string from a cache (publishes repeat intervals)."""
    if not segment.model_extra and segment.identifier is None:
        text = segment.model_dump_json()
        if text.isascii() and segment.id.isascii():
            return f'{text[:-1]},"identifier":{json.dumps(segment.id)}}}'.encode()
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


def ordered(query: sa.Select[Any]) -> sa.Select[Any]:
    return query.order_by(S.c.start_ms, S.c.end_ms, S.c.version, S.c.partition_num)


def chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def used_sets(
    conn: Connection, data_source: str, interval: Optional[Interval], *, sizes: bool = False
) -> SetColumns:
    """The partition sets of the used segments of ``data_source`` overlapping ``interval`` (all when None),
    aggregated by the database from the narrow columns; with ``sizes``, each set's bytes and rows too (zeros
    otherwise: each aggregate costs the database time on a million rows).

    A set is complete when its core partitions ``0..N-1`` are all there; only a set whose rows disagree on N, or
    a ``single``/``range`` set of unknown core size (which must chain its ranges), has its payloads read.
    """
    core = sa.func.coalesce(S.c.core_partitions, -1)
    in_core = sa.case((sa.and_(S.c.partition_num >= 0, S.c.partition_num < S.c.core_partitions), 1), else_=0)
    # PostgreSQL's sum of a bigint is a numeric: cast back, so that the driver hands out ints.
    totals = (
        (sa.cast(sa.func.sum(S.c.size), sa.BigInteger), sa.cast(sa.func.sum(S.c.num_rows), sa.BigInteger))
        if sizes
        else (sa.literal(0), sa.literal(0))
    )
    query = (
        sa.select(
            S.c.start_ms, S.c.end_ms, S.c.version, sa.func.count(), sa.func.min(core), sa.func.max(core),
            sa.func.sum(in_core), *totals,
        )
        .where(*where(data_source, interval, False), S.c.used == sa.true())
        .group_by(S.c.start_ms, S.c.end_ms, S.c.version)
    )
    # The driver's tuples, not SQLAlchemy rows: these columns need no result processing.
    with gc_paused():
        rows = conn.execute(query).cursor.fetchall()
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return SetColumns(empty, empty, [], np.zeros(0, dtype=bool), empty, empty, empty)
    start, end, version, count, lo, hi, present, size, num_rows = (np.array(c) for c in zip(*rows, strict=True))
    del rows
    start, end, lo, hi = start.astype(np.int64), end.astype(np.int64), lo.astype(np.int64), hi.astype(np.int64)
    complete = (lo == hi) & ((hi == 0) | (present.astype(np.int64) == hi))
    versions = version.tolist()
    sets = SetColumns(start, end, versions, complete, count.astype(np.int64), size.astype(np.int64), num_rows.astype(np.int64))
    odd = np.flatnonzero((lo != hi) | (lo < 0)).tolist()
    if odd:
        for k, members in zip(odd, load_sets(conn, data_source, sets, odd), strict=True):
            complete[k] = partition_set_complete(members)
    return sets


def concat_sets(parts: Sequence[SetColumns]) -> SetColumns:
    """The partition sets of ``parts`` together, each ``(start, end, version)`` once (the first part's row wins: a
    set read twice, by two overlapping reads, has the same columns in both)."""
    parts = [p for p in parts if len(p.start)]
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return SetColumns(empty, empty, [], np.zeros(0, dtype=bool), empty, empty, empty)
    if len(parts) == 1:
        return parts[0]
    versions = [v for p in parts for v in p.version]
    start, end = np.concatenate([p.start for p in parts]), np.concatenate([p.end for p in parts])
    seen: set[tuple[int, int, str]] = set()
    keep = []
    for i, key in enumerate(zip(start.tolist(), end.tolist(), versions, strict=True)):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    rows = np.asarray(keep, dtype=np.int64)
    return SetColumns(
        start[rows], end[rows], [versions[i] for i in keep], np.concatenate([p.complete for p in parts])[rows],
        np.concatenate([p.segments for p in parts])[rows], np.concatenate([p.size for p in parts])[rows],
        np.concatenate([p.num_rows for p in parts])[rows],
    )


def ids_of_sets(conn: Connection, data_source: str, keys: Sequence[tuple[int, int, str]]) -> list[str]:
    """The ids of the used segments of the partition sets ``keys`` (``(start_ms, end_ms, version)``): a column
    read, no payload parsed."""
    out: list[str] = []
    for chunk in chunks(list(keys), 100):
        query = sa.select(S.c.id).where(
            S.c.dataSource == data_source,
            S.c.used == sa.true(),
            sa.or_(*(sa.and_(S.c.start_ms == s, S.c.end_ms == e, S.c.version == v) for s, e, v in chunk)),
        )
        out += [r[0] for r in conn.execute(query)]
    return out


def load_sets(conn: Connection, data_source: str, sets: SetColumns, positions: list[int]) -> list[list[DataSegment]]:
    """The used segments of the partition sets at ``positions`` of ``sets``, each ordered by partition number.

    Few sets are read by their keys; many, by one range query over their span whose unwanted rows are skipped
    unparsed.
    """
    keys = [(int(sets.start[k]), int(sets.end[k]), sets.version[k]) for k in positions]
    wanted = set(keys)
    base = sa.select(S.c.start_ms, S.c.end_ms, S.c.version, S.c.payload).where(
        S.c.dataSource == data_source, S.c.used == sa.true()
    )
    if len(keys) <= _KEYED_SETS:
        queries = [
            base.where(sa.or_(*(sa.and_(S.c.start_ms == s, S.c.end_ms == e, S.c.version == v) for s, e, v in chunk)))
            for chunk in chunks(keys, 100)
        ]
    else:
        span = Interval(min(k[0] for k in keys), max(k[1] for k in keys))
        queries = [base.where(S.c.start_ms < span.end, S.c.end_ms > span.start)]
    found: dict[tuple[int, int, str], list[DataSegment]] = {}
    with gc_paused():
        for query in queries:
            for s, e, v, payload in conn.execute(ordered(query)).cursor.fetchall():
                key = (s, e, v)
                if key in wanted:
                    # psycopg2 hands bytea out as memoryview
                    found.setdefault(key, []).append(segment_from_payload(payload if isinstance(payload, bytes) else bytes(payload)))
    missing = [k for k in keys if k not in found]
    if missing:
        raise SegmentsChangedError(
            f"{len(missing)} partition set(s) of {data_source} stopped being used while being read, e.g. {missing[0]}"
        )
    return [found[k] for k in keys]


def check_reason(reason: str) -> None:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 64:
        raise SpecError("reason", reason, "a reason is a non-empty string of at most 64 characters")


def insert_ignore(conn: Connection, table: sa.Table, row: dict[str, Any], key: str) -> sa.Insert:
    """INSERT that does nothing when ``key`` is already taken (ON CONFLICT DO NOTHING on both dialects)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).values(**row).on_conflict_do_nothing(index_elements=[key])
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).values(**row).on_conflict_do_nothing(index_elements=[key])
