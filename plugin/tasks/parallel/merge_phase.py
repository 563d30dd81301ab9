"""The merge phase of ``index_parallel`` (Druid's partial segment merge): the merge units over every split's
successful partial, one per (chunk, partition) or grouped by ``totalNumMergeTasks``, each rolled up again from its
partials into the final segment(s); then the publish plan, and the partials' cleanup."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from druidflow.exceptions import SpecError
from druidflow.ingest.builder import tune_allocator
from druidflow.ingest.parse import BUCKET, CHUNK, RowParser
from druidflow.ingest.partitioning import hashed_shards
from druidflow.ingest.stats import RowStats
from druidflow.intervals import Interval
from druidflow.segments.shardspec import with_core_partitions
from druidflow.specs.dimensions import DimensionSchema
from druidflow.specs.tasks import IndexTask
from druidflow.tasks import index
from druidflow.tasks.index import BuildResult, ChunkPlan
from druidflow.tasks.parallel.handoffs import (
    FinalPlan,
    MergeUnit,
    ParallelPlan,
    PartialFile,
    PartialResult,
    capped_events,
    partial_prefix,
    partitions_spec,
    segment_granularity,
)
from druidflow.tasks.parallel.partial_phase import incremental_index
from druidflow.tasks.runtime import Runtime


def merges(task: IndexTask, the_plan: ParallelPlan, results: Sequence[PartialResult], rt: Runtime) -> list[MergeUnit]:
    """One merge unit per (chunk, partition) over exactly the files of ``results`` (one per split: its successful
    attempt). Chunks found only now (no intervals, no scan) are locked here."""
    results = _one_per_split(the_plan, results)
    files = [f for r in results for f in r.files]
    dims, multi = _union_dimensions(results)
    chunks = list(the_plan.chunks)
    if not the_plan.chunks_known:
        seg = segment_granularity(task)
        found = [seg.bucket(st) for st in sorted({f.chunk_start for f in files})]
        if found:
            index.acquire_locks(task, rt, found)
        versions = index.chunk_versions(task, rt, found)
        partitions = partitions_spec(task)
        shards = hashed_shards(partitions.num_shards, partitions.partition_dimensions) if partitions.type == "hashed" else []
        chunks = [ChunkPlan(interval=c, version=versions[c], shards=shards) for c in found]
    pieces: list[tuple[ChunkPlan, list[PartialFile]]] = []
    for chunk in chunks:
        mine = [f for f in files if f.chunk_start == chunk.interval.start]
        if not chunk.shards:
            if mine:
                pieces.append((chunk, mine))
            continue
        for shard in chunk.shards:
            own = [f for f in mine if f.partition_num == shard.partition_num]
            if shard.type == "hashed" and not any(f.rows for f in own):
                continue  # Druid publishes only the hash buckets that got rows
            pieces.append((chunk.model_copy(update={"shards": [shard]}), own))
    numbering = _hashed_numbering(results, pieces)
    groups = _balanced(pieces, task.spec.tuning_config.total_num_merge_tasks)
    return [
        MergeUnit(
            task_id=task.task_id,
            chunks=[c for c, _ in group],
            files=[[f.load_spec for f in fs] for _, fs in group],
            numbering={str(k): {str(b): n for b, n in v.items()} for k, v in numbering.items() if any(c.interval.start == k for c, _ in group)},
            dimensions=dims,
            multi_value=multi,
        )
        for group in groups
    ]


def _hashed_numbering(
    results: Sequence[PartialResult], pieces: Sequence[tuple[ChunkPlan, list[PartialFile]]]
) -> dict[int, dict[int, int]]:
    """Per chunk start, each non-empty hash bucket's ``partitionNum``: 0..N-1 by the order its first row arrived in
    the input — the order the ``index`` task numbers them in (Druid's allocator numbers a bucket when its first row
    asks for a segment). Splits are in reading order, so the first arrival is the least (split, row position)."""
    hashed = {c.interval.start for c, _ in pieces if c.shards and c.shards[0].type == "hashed"}
    first: dict[tuple[int, int], tuple[int, int]] = {}
    for r in results:  # in split order
        for start, bucket, row in r.arrivals:
            if start in hashed:
                first.setdefault((start, bucket), (r.split, row))
    numbering: dict[int, dict[int, int]] = {start: {} for start in hashed}
    for (start, bucket), _ in sorted(first.items(), key=lambda item: (item[0][0], item[1])):
        numbering[start][bucket] = len(numbering[start])
    return numbering


def _balanced(pieces: list[tuple[ChunkPlan, list[PartialFile]]], limit: Optional[int]) -> list[list[tuple[ChunkPlan, list[PartialFile]]]]:
    """One group per piece, or at most ``limit`` groups (Druid's totalNumMergeTasks) of about equal rows, each in
    time order."""
    if limit is None or len(pieces) <= limit:
        return [[p] for p in pieces]
    loads = [0] * limit
    groups: list[list[int]] = [[] for _ in range(limit)]
    order = sorted(range(len(pieces)), key=lambda i: -sum(f.rows for f in pieces[i][1]))
    for i in order:
        g = loads.index(min(loads))
        groups[g].append(i)
        loads[g] += sum(f.rows for f in pieces[i][1]) or 1
    return [[pieces[i] for i in sorted(g)] for g in groups if g]


def _one_per_split(the_plan: ParallelPlan, results: Sequence[PartialResult]) -> list[PartialResult]:
    by_split: dict[int, PartialResult] = {}
    for r in results:
        if r.split in by_split and by_split[r.split].attempt != r.attempt:
            raise SpecError("partials", r.split, "two attempts of one split were handed to the merge; pass each split's successful attempt once")
        by_split[r.split] = r
    missing = sorted({s.index for s in the_plan.splits} - set(by_split))
    if missing:
        raise SpecError("partials", missing, "these splits have no partial result; every split must finish before the merge")
    return [by_split[i] for i in sorted(by_split)]


def _union_dimensions(results: Sequence[PartialResult]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every split's dimensions in order of first appearance (splits may discover different columns)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in results:
        for d in r.dimensions:
            seen.setdefault(d["name"], d)
    return list(seen.values()), sorted({m for r in results for m in r.multi_value})


def merge(task: IndexTask, unit: MergeUnit, rt: Runtime) -> BuildResult:
    """Druid's partial segment merge: each (chunk, partition) of the unit rolled up again from its partials."""
    segments, persists = [], 0
    for chunk, files in zip(unit.chunks, unit.files):
        built = _merge_one(task, unit, chunk, files, rt)
        segments.extend(built.segments)
        persists += built.persists
    return BuildResult(task_id=task.task_id, segments=segments, persists=persists)


def _merge_one(task: IndexTask, unit: MergeUnit, chunk: ChunkPlan, files: list[dict[str, Any]], rt: Runtime) -> BuildResult:
    def partials() -> Iterator[pa.Table]:
        for load_spec in files:
            with rt.storage.open_local(load_spec) as path:
                yield ipc.open_file(pa.memory_map(str(path))).read_all()

    return merge_tables(task, unit, chunk, partials(), rt)


def merge_tables(task: IndexTask, unit: MergeUnit, chunk: ChunkPlan, partials: Iterable[pa.Table], rt: Runtime) -> BuildResult:
    """One (chunk, partition)'s partial tables rolled up again and cut into segments pushed to deep storage; the
    merge step of ``index_parallel`` (partials from deep storage) and of the Spark build (from its shuffle)."""
    parser = RowParser(task.spec.data_schema, list_delimiter=index.list_delimiter(task))
    parser.dimensions = [DimensionSchema.parse(d) for d in unit.dimensions]
    parser.multi_value_dimensions = set(unit.multi_value)
    shard = chunk.shards[0] if chunk.shards else None
    scratch = rt.scratch(f"{task.task_id[:40]}-merge-")
    tune_allocator()
    try:
        sink = index.SegmentSink(task, rt, [(chunk, shard)], scratch / "segments", parser, _Numbering(unit.numbering))
        max_total_rows = getattr(partitions_spec(task), "max_total_rows", None)
        built = incremental_index(task, parser, scratch / "persists", sink.write, sink.close_buckets, max_total_rows=max_total_rows)
        template = parser.empty_table(parser.dimensions).drop_columns([CHUNK])
        for table in partials:
            table = _conform(table, template)
            built.add(table.append_column(BUCKET, pa.array(np.zeros(table.num_rows, dtype=np.int64))))
        built.finish()
        sink.close_all()
        sink.fill_empty_shards()
        core = len(unit.numbering.get(str(chunk.interval.start), {}))
        segments = [
            s.model_copy(update={"shard_spec": with_core_partitions(s.shard_spec, core)}) if s.shard_spec.type == "hashed" else s
            for s in sink.segments
        ]
        return BuildResult(task_id=task.task_id, segments=segments, persists=built.persists)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Numbering:
    """The ``partition_num`` lookup :class:`~druidflow.tasks.index.SegmentSink` asks its assigner for."""

    def __init__(self, numbering: dict[str, dict[str, int]]) -> None:
        self.numbering = numbering

    def partition_num(self, chunk_start: int, bucket_id: int) -> int:
        return self.numbering[str(chunk_start)][str(bucket_id)]


def _conform(table: pa.Table, template: pa.Table) -> pa.Table:
    """A partial of a split that did not see every dimension gets the missing ones as nulls, in the union's order."""
    columns = []
    for name in template.column_names:
        if name in table.column_names:
            columns.append(table.column(name))
        else:
            columns.append(pa.nulls(table.num_rows, template.schema.field(name).type))
    extra = [n for n in table.column_names if n not in template.column_names]
    return pa.table(columns + [table.column(n) for n in extra], names=template.column_names + extra)


def final_plan(task: IndexTask, the_plan: ParallelPlan, units: Sequence[MergeUnit], partials: Sequence[PartialResult]) -> FinalPlan:
    chunks: dict[Interval, ChunkPlan] = {c.interval: c for c in the_plan.chunks}
    for u in units:
        for c in u.chunks:
            chunks.setdefault(c.interval, c.model_copy(update={"shards": []}))
    stats = RowStats()
    events: list[dict[str, Any]] = []
    for r in partials:
        stats = stats.plus(r.row_stats)
        events.extend(r.unparseable_events)
    return FinalPlan(
        task_id=task.task_id,
        data_source=task.data_source,
        chunks=sorted(chunks.values(), key=lambda c: c.interval),
        build_units=[],
        determined_intervals=task.spec.data_schema.granularity_spec.bucket_intervals() is None,
        row_stats=the_plan.row_stats,
        unparseable_events=the_plan.unparseable_events,
        build_row_stats=stats,
        build_unparseable_events=capped_events(task, events),
    )


def cleanup(task_id: str, rt: Runtime) -> int:
    """Delete every partial file of the task (any attempt's); returns how many."""
    n = 0
    for _key, _size, load_spec in list(rt.storage.list_keys(partial_prefix(task_id) + "/")):
        n += bool(rt.storage.delete(load_spec))
    return n


# --------------------------------------------------------------------------------------------- definition

