"""Split planning of ``index_parallel``: the input split once, Druid's partial_dimension_cardinality /
partial_dimension_distribution scans per split where the partitionsSpec needs statistics, and the decision of the
chunks, their locks, versions and shards."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.ingest.parse import CHUNK, RowParser
from druidflow.ingest.partitioning import HyperLogLog, ShardPlan, hashed_shards, range_keys, range_shards, row_hashes
from druidflow.ingest.stats import RowStats
from druidflow.inputs import open_input
from druidflow.inputs.batch import InputBatch
from druidflow.inputs.splits import (
    InputSplit,
    MaxSizeSplitHint,
    narrowed_source,
    parse_split_hint,
    plan_splits,
    split_objects,
)
from druidflow.intervals import Interval
from druidflow.specs.io import DruidInputSource
from druidflow.specs.tasks import IndexTask
from druidflow.tasks import index
from druidflow.tasks.index import ChunkPlan
from druidflow.tasks.index_input import text_fields
from druidflow.tasks.parallel.handoffs import (
    ParallelPlan,
    SplitScan,
    capped_events,
    concurrency,
    partitions_spec,
    segment_granularity,
)
from druidflow.tasks.parallel.segment_splits import segment_batches, segment_splits
from druidflow.tasks.runtime import Runtime


def plan(task: IndexTask, rt: Runtime) -> ParallelPlan:
    """Split the input once; with intervals and a partitioning that needs no statistics, decide the chunks now."""
    io = task.spec.io_config
    hint = parse_split_hint(task.spec.tuning_config.split_hint_spec)
    if isinstance(io.input_source, DruidInputSource):
        splits = segment_splits(io.input_source, hint, concurrency(task), rt)
    else:
        assert isinstance(hint, MaxSizeSplitHint)  # the definition's check refuses the segments hint for files
        splits = plan_splits(io.input_source, io.input_format, hint, concurrency(task))
    partitions = partitions_spec(task)
    chunks = task.spec.data_schema.granularity_spec.bucket_intervals()
    scan = partitions.type in ("single_dim", "range") or (partitions.type == "hashed" and partitions.num_shards is None)
    the_plan = ParallelPlan(task_id=task.task_id, data_source=task.data_source, splits=splits, scan=scan)
    if not scan and chunks is not None:
        return decide(task, the_plan, [], rt)
    return the_plan


def scan(task: IndexTask, the_plan: ParallelPlan, split: InputSplit, rt: Runtime) -> SplitScan:
    """One split's pass of Druid's partial_dimension_cardinality / partial_dimension_distribution phase."""
    schema = task.spec.data_schema
    partitions = partitions_spec(task)
    chunks = schema.granularity_spec.bucket_intervals()
    parser = RowParser(schema, list_delimiter=index.list_delimiter(task), chunks=chunks, handler=index.parse_handler(task))
    ranged = partitions.type in ("single_dim", "range")
    hashed = partitions.type == "hashed"
    sketches: dict[int, HyperLogLog] = {}
    counts: dict[int, dict[str, int]] = {}
    found: set[int] = set()
    stats = RowStats()
    for batch in split_batches(task, split, rt):
        parsed = parser.parse(
            batch.data, batch.unparseable, batch.bytes_read, batch.times, batch.non_flat_fields, batch.integral_numbers
        )
        stats = stats.plus(parsed.stats)
        table = parsed.table
        if not table.num_rows:
            continue
        chunk_col = table.column(CHUNK).to_numpy()
        starts = np.unique(chunk_col)
        for start in starts:
            rows = table.filter(pa.array(chunk_col == start)) if len(starts) > 1 else table
            found.add(int(start))
            if hashed:
                keys = ["__time"] + [d.name for d in parser.dimensions or []]
                sketches.setdefault(int(start), HyperLogLog()).add_hashes(row_hashes(rows, keys))
            elif ranged:
                into = counts.setdefault(int(start), {})
                vc = pc.value_counts(range_keys(rows, partitions.partition_dimensions))
                for value, count in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                    into[value] = into.get(value, 0) + count
    return SplitScan(
        split=split.index,
        chunks=sorted(found),
        sketches={str(k): base64.b64encode(v.registers.tobytes()).decode() for k, v in sketches.items()},
        value_counts={str(k): v for k, v in counts.items()},
        row_stats=stats,
        unparseable_events=parser.handler.saved_reports(),
    )


def decide(task: IndexTask, the_plan: ParallelPlan, scans: Sequence[SplitScan], rt: Runtime) -> ParallelPlan:
    """The chunks (from the intervals, or the scans — then locked now), their versions and shards."""
    gran = task.spec.data_schema.granularity_spec
    partitions = partitions_spec(task)
    chunks = gran.bucket_intervals()
    if chunks is None and not the_plan.scan:
        return the_plan  # dynamic or hashed numShards without intervals: the partials find the chunks
    seg = segment_granularity(task)
    starts = sorted({c for s in scans for c in s.chunks})
    if chunks is None:
        chunks = [seg.bucket(st) for st in starts]
        if chunks:
            index.acquire_locks(task, rt, chunks)
    by_start = {c.start: c for c in chunks}
    shards: dict[Interval, list[ShardPlan]] = {}
    if partitions.type == "hashed" and partitions.num_shards is not None:
        shards = {c: hashed_shards(partitions.num_shards, partitions.partition_dimensions) for c in chunks}
    elif partitions.type == "hashed":
        for st in starts:
            hll = HyperLogLog()
            for s in scans:
                if str(st) in s.sketches:
                    hll.merge(_hll(s.sketches[str(st)]))
            n = max(1, math.ceil(max(hll.estimate(), 1) / partitions.target_rows_per_segment))
            shards[by_start[st]] = hashed_shards(n, partitions.partition_dimensions)
    elif partitions.type in ("single_dim", "range"):
        kind = "single" if partitions.type == "single_dim" else "range"
        for st in starts:
            merged: dict[str, int] = {}
            for s in scans:
                for value, count in s.value_counts.get(str(st), {}).items():
                    merged[value] = merged.get(value, 0) + count
            shards[by_start[st]] = range_shards(
                merged, kind, partitions.partition_dimensions, partitions.effective_target_rows_per_segment,
                partitions.effective_max_rows_per_segment,
            )
    versions = index.chunk_versions(task, rt, chunks)
    stats = RowStats()
    events: list[dict[str, Any]] = []
    for s in scans:
        stats = stats.plus(s.row_stats)
        events.extend(s.unparseable_events)
    return the_plan.model_copy(
        update={
            "chunks": [ChunkPlan(interval=c, version=versions[c], shards=shards.get(c, [])) for c in chunks],
            "chunks_known": True,
            "row_stats": stats,
            "unparseable_events": capped_events(task, events),
        }
    )


def _hll(encoded: str) -> HyperLogLog:
    hll = HyperLogLog()
    hll.registers = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).copy()
    return hll


def split_batches(task: IndexTask, split: InputSplit, rt: Runtime) -> Iterator[InputBatch]:
    """The batches of one split's share of the input: its files or byte ranges, or its segments."""
    io = task.spec.io_config
    if isinstance(io.input_source, DruidInputSource):
        return segment_batches(io.input_source, split, rt, task.spec.data_schema.timestamp_spec.column)
    dictionary = pa.dictionary(pa.int32(), pa.string())
    reader = open_input(
        narrowed_source(io.input_source, split),
        io.input_format,
        column_types={d: dictionary for d in index.string_dimensions(task)},
        text_fields=text_fields(task),
    )
    return reader.read_objects(split_objects(reader.objects(), split, reader.input_format))
