"""The ``index`` task's determine-partitions step: its time chunks, their versions, shards and build units.

The input is read first exactly when Druid would: when no intervals are given (to find the chunks, which are
locked afterwards) or when the partitioning needs statistics (hashed without ``numShards``: distinct rows per
chunk; ``single_dim``/``range``: the values to cut at).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.exceptions import LockRevokedError, LockUnavailableError
from druidflow.granularity import Granularity
from druidflow.ingest.parse import RowParser
from druidflow.ingest.partitioning import HyperLogLog, ShardPlan, hashed_shards, range_keys, range_shards, row_hashes
from druidflow.ingest.stats import RowStats
from druidflow.intervals import Interval
from druidflow.specs.tasks import IndexTask
from druidflow.specs.tuning import (
    DEFAULT_MAX_ROWS_PER_SEGMENT,
    DimensionRangePartitionsSpec,
    HashedPartitionsSpec,
    SingleDimensionPartitionsSpec,
)
from druidflow.tasks import protocol
from druidflow.tasks.index_input import list_delimiter, parse_handler, string_dimensions, task_reader
from druidflow.tasks.index_plan import BuildUnit, ChunkPlan, IndexPlan
from druidflow.tasks.runtime import Runtime

RANGE_SPECS = (SingleDimensionPartitionsSpec, DimensionRangePartitionsSpec)

#: What the determine pass found: the chunks with data, each chunk's shards where statistics decide them, and the
#: pass's row counters and saved parse exceptions.
Determined = tuple[list[Interval], dict[Interval, list[ShardPlan]], RowStats, list[dict[str, Any]]]


def determine_partitions(task: IndexTask, rt: Runtime) -> IndexPlan:
    """Decide the chunks, their shards and the build units (reading the input first only when Druid would)."""
    gran = task.spec.data_schema.granularity_spec
    partitions = task.spec.tuning_config.effective_partitions_spec
    chunks = gran.bucket_intervals()
    stats = RowStats()
    events: list[dict[str, Any]] = []
    determined = chunks is None
    shards: dict[Interval, list[ShardPlan]] = {}
    if determined or partitions.needs_determine_partitions or isinstance(partitions, RANGE_SPECS):
        found, shards, stats, events = scan_partitions(task, rt, chunks)
        if determined:
            chunks = found
            if chunks:
                protocol.acquire_locks(task, rt, requests=protocol.lock_requests_for(task, chunks))
    if isinstance(partitions, HashedPartitionsSpec) and partitions.num_shards is not None:
        shards = {c: hashed_shards(partitions.num_shards, partitions.partition_dimensions) for c in chunks or []}
    versions = chunk_versions(task, rt, chunks or [])
    plans = [ChunkPlan(interval=c, version=versions[c], shards=shards.get(c, [])) for c in chunks or []]
    pieces = [p.model_copy(update={"shards": [sh]}) for p in plans for sh in p.shards] if any(p.shards for p in plans) else plans
    all_chunks = [p.interval for p in plans]
    units = [
        BuildUnit(task_id=task.task_id, chunks=group, all_chunks=all_chunks, primary=i == 0)
        for i, group in enumerate(group_pieces(pieces, max_concurrent_builds(task)))
    ]
    return IndexPlan(
        task_id=task.task_id,
        data_source=task.data_source,
        chunks=plans,
        build_units=units,
        determined_intervals=determined,
        row_stats=stats,
        unparseable_events=events,
    )


def max_concurrent_builds(task: IndexTask) -> Optional[int]:
    tuning = task.spec.tuning_config
    return tuning.max_num_concurrent_sub_tasks if tuning.type == "index_parallel" else None


def group_pieces(pieces: list[ChunkPlan], limit: Optional[int]) -> list[list[ChunkPlan]]:
    """One build unit per piece, or, with ``maxNumConcurrentSubTasks``, at most that many units of consecutive
    pieces (as Druid spreads the work over that many sub-tasks; 1 is its sequential mode): never more builds at
    once than the spec allows, in-process or as mapped Airflow tasks."""
    if limit is None or len(pieces) <= limit:
        return [[p] for p in pieces]
    size, extra = divmod(len(pieces), limit)
    groups, start = [], 0
    for i in range(limit):
        end = start + size + (1 if i < extra else 0)
        groups.append(pieces[start:end])
        start = end
    return groups


def chunk_versions(task: IndexTask, rt: Runtime, chunks: Sequence[Interval]) -> dict[Interval, str]:
    """The version each chunk's overwrite segments get: that of the task's (or its group's) lock covering it."""
    locks = [lk for lk in rt.lockbox.locks(datasource=task.data_source) if lk.task_id == task.task_id or lk.group_id == task.group_id]
    out = {}
    for chunk in chunks:
        covering = [lk for lk in locks if lk.interval.contains(chunk) and not lk.revoked]
        if not covering:
            if any(lk.interval.contains(chunk) for lk in locks):
                raise LockRevokedError(f"task {task.task_id}: the lock on {task.data_source} {chunk} was revoked; nothing was published")
            raise LockUnavailableError(f"task {task.task_id} holds no lock on {task.data_source} {chunk}; acquire locks first")
        out[chunk] = max(lk.version for lk in covering)
    return out


def scan_partitions(task: IndexTask, rt: Runtime, chunks: Optional[list[Interval]]) -> Determined:
    """The determine-partitions pass: the chunks with data, and each chunk's shards when statistics decide them."""
    schema = task.spec.data_schema
    partitions = task.spec.tuning_config.effective_partitions_spec
    parser = RowParser(schema, list_delimiter=list_delimiter(task), chunks=chunks, handler=parse_handler(task))
    stats = RowStats()
    seen: set[int] = set()
    sketches: dict[int, HyperLogLog] = {}
    value_counts: dict[int, dict[str, int]] = {}
    hashed = isinstance(partitions, HashedPartitionsSpec) and partitions.num_shards is None
    range_dimensions = partitions.partition_dimensions if isinstance(partitions, RANGE_SPECS) else None
    for batch in task_reader(task, rt, string_dimensions(task)).batches():
        parsed = parser.parse(
            batch.data, batch.unparseable, batch.bytes_read, batch.times, batch.non_flat_fields, batch.integral_numbers
        )
        stats = stats.plus(parsed.stats)
        table = parsed.table
        if not table.num_rows:
            continue
        chunk_col = table.column("__chunk").to_numpy()
        present = np.unique(chunk_col)
        for chunk in present.tolist():
            seen.add(chunk)
            rows = table.filter(pa.array(chunk_col == chunk)) if len(present) > 1 else table
            if hashed:
                keys = ["__time"] + [d.name for d in parser.dimensions or []]
                sketches.setdefault(chunk, HyperLogLog()).add_hashes(row_hashes(rows, keys))
            elif range_dimensions is not None:
                counts = value_counts.setdefault(chunk, {})
                vc = pc.value_counts(range_keys(rows, range_dimensions))
                for value, count in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                    counts[value] = counts.get(value, 0) + count
    seg = schema.granularity_spec.segment_granularity
    starts = sorted(seen)
    by_start = {c.start: c for c in chunks} if chunks else {}
    found = [_chunk_at(st, by_start, seg) for st in starts]
    shards: dict[Interval, list[ShardPlan]] = {}
    for st, chunk_interval in zip(starts, found):
        if hashed and isinstance(partitions, HashedPartitionsSpec):
            rows_estimate = max(sketches[st].estimate(), 1)
            target = partitions.target_rows_per_segment or DEFAULT_MAX_ROWS_PER_SEGMENT  # the spec's own default
            n = max(1, math.ceil(rows_estimate / target))
            shards[chunk_interval] = hashed_shards(n, partitions.partition_dimensions)
        elif isinstance(partitions, RANGE_SPECS):
            kind = "single" if isinstance(partitions, SingleDimensionPartitionsSpec) else "range"
            shards[chunk_interval] = range_shards(
                value_counts[st],
                kind,
                partitions.partition_dimensions,
                partitions.effective_target_rows_per_segment,
                partitions.effective_max_rows_per_segment,
            )
    return found, shards, stats, parser.handler.saved_reports()


def _chunk_at(start: int, given: dict[int, Interval], granularity: Optional[Granularity]) -> Interval:
    """The chunk a row's ``__chunk`` start stands for: a given interval, else the segment bucket there (an
    arbitrary granularitySpec has no segment granularity, but always gives its intervals)."""
    if start in given or granularity is None:
        return given[start]
    return granularity.bucket(start)
