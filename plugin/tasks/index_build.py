"""The ``index`` task's build step: read the input once, keep the rows of the units' chunks and shards, roll them
up and push their segments to deep storage (published later, all at once, by the publish step)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import Optional

from druidflow.granularity import DurationGranularity, Granularity, PeriodGranularity
from druidflow.ingest.builder import IncrementalIndex, persist_codec, tune_allocator
from druidflow.ingest.parse import BUCKET, CHUNK, RowParser
from druidflow.ingest.partitioning import ShardPlan
from druidflow.ingest.prefetch import prefetched
from druidflow.ingest.stats import RowStats
from druidflow.segments.shardspec import with_core_partitions
from druidflow.specs.tasks import IndexTask
from druidflow.specs.tuning import HashedPartitionsSpec
from druidflow.tasks.bucket_assigner import BucketAssigner
from druidflow.tasks.index_input import list_delimiter, parse_handler, string_dimensions, task_reader
from druidflow.tasks.index_plan import BuildResult, BuildUnit, ChunkPlan
from druidflow.tasks.runtime import Runtime
from druidflow.tasks.segment_sink import SegmentSink


def build(task: IndexTask, unit: BuildUnit, rt: Runtime) -> BuildResult:
    """Read the input, keep the rows of the unit's chunks, roll them up and push their segments."""
    return build_units(task, [unit], rt)


def build_units(task: IndexTask, units: Sequence[BuildUnit], rt: Runtime) -> BuildResult:
    """Build several units in one pass over the input (what ``run`` does with all of them)."""
    schema = task.spec.data_schema
    tuning = task.spec.tuning_config
    buckets = output_buckets(units)
    if not buckets:
        return BuildResult(task_id=task.task_id, segments=[])
    all_chunks = sorted({iv for u in units for iv in (u.all_chunks or [c.interval for c in u.chunks])})
    primary = any(u.primary for u in units)
    handler = parse_handler(task) if primary else parse_handler(task, saved=False)
    partitions = tuning.effective_partitions_spec
    hash_dimensions = list(partitions.partition_dimensions) if isinstance(partitions, HashedPartitionsSpec) else None
    parser = RowParser(
        schema,
        list_delimiter=list_delimiter(task),
        chunks=all_chunks,
        handler=handler,
        count_unowned=primary,
        hash_partition_dimensions=hash_dimensions,
    )
    assigner = BucketAssigner(buckets, parser, partitions)
    parser.assign = assigner
    if hash_dimensions is not None:
        from druidflow.ingest.murmur import warm_up_in_background

        warm_up_in_background()
    scratch = rt.scratch(f"{task.task_id[:40]}-build-")
    tune_allocator()
    try:
        sink = SegmentSink(task, rt, buckets, scratch / "segments", parser, assigner)
        index: Optional[IncrementalIndex] = None
        stats = RowStats()
        for batch in prefetched(task_reader(task, rt, string_dimensions(task)).batches()):
            parsed = parser.parse(
                batch.data, batch.unparseable, batch.bytes_read, batch.times, batch.non_flat_fields, batch.integral_numbers
            )
            stats = stats.plus(parsed.stats)
            if index is None:
                index = IncrementalIndex(
                    dimensions=[d.name for d in parser.dimensions or []],
                    metrics=parser.metrics,
                    work_dir=scratch / "persists",
                    sink=sink.write,
                    flush_done=sink.close_buckets,
                    rollup=schema.rollup,
                    time_step=fixed_step(schema.granularity_spec.query_granularity),
                    max_rows_in_memory=tuning.max_rows_in_memory,
                    max_bytes_in_memory=tuning.effective_max_bytes_in_memory() or 0,
                    max_total_rows=getattr(partitions, "max_total_rows", None),
                    group_column=BUCKET,
                    persist_compression=persist_codec(tuning.effective_index_spec_for_intermediate_persists),
                )
            index.add(parsed.table.drop_columns([CHUNK]))
        if index is not None:
            index.finish()
        sink.close_all()
        sink.fill_empty_shards()
        # A chunk's hashed segments form its core partition set: every bucket that got a row (all of them known
        # once the whole input is read, to every unit alike).
        segments = [
            s.model_copy(update={"shard_spec": with_core_partitions(s.shard_spec, len(assigner.arrival[s.interval.start]))})
            if s.shard_spec.type == "hashed"
            else s
            for s in sink.segments
        ]
        return BuildResult(
            task_id=task.task_id,
            segments=segments,
            row_stats=stats,
            unparseable_events=parser.handler.saved_reports(),
            persists=index.persists if index else 0,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def output_buckets(units: Sequence[BuildUnit]) -> list[tuple[ChunkPlan, Optional[ShardPlan]]]:
    """One output bucket per (chunk, shard) the units build; a chunk without shards (dynamic) is one bucket."""
    buckets: list[tuple[ChunkPlan, Optional[ShardPlan]]] = []
    for unit in units:
        for chunk in unit.chunks:
            shards: list[Optional[ShardPlan]] = [*chunk.shards] or [None]
            buckets.extend((chunk, shard) for shard in shards)
    return buckets


def fixed_step(granularity: Granularity) -> Optional[int]:
    """The bucket width in ms when every bucket has the same width (no months, years or time-zone shifts)."""
    if isinstance(granularity, DurationGranularity):
        return granularity.duration
    if isinstance(granularity, PeriodGranularity):
        period = granularity.period
        tz = granularity.time_zone
        if period.calendar_months == 0 and (tz is None or tz.is_utc or tz.is_fixed):
            return period.fixed_ms or None
    return None
