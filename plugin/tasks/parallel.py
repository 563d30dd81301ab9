"""The ``index_parallel`` task: Druid's native parallel batch ingestion, as phases any worker can run.

    submit ─▶ acquire_locks ─▶ plan (split the input once)
          ─▶ scan (one per split: intervals and partition statistics, only when the partitionsSpec needs them)
          ─▶ decide (the chunks, their locks, versions and shards)
          ─▶ partial (one per split: its rows parsed, bucketed by (time chunk, partition) and rolled up, written
             to deep storage under ``_partials/<task>/<split>/<attempt>/``)
          ─▶ merges (the partials recorded for each split's successful attempt, grouped per (chunk, partition))
          ─▶ merge (one per (chunk, partition): its partials rolled up again into the final segment(s))
          ─▶ publish (one transaction, by the protocol's publisher) ─▶ release, partials deleted

As in Druid, rows are bucketed in the partial phase so that every row of one rollup key lands in the same
(chunk, partition) whichever split read it — Druid's hash of (truncated time, dimensions) for ``hashed``, the
dimension ranges decided from every split's value distribution for ``single_dim``/``range``, the chunk alone for
``dynamic`` — so the merge phase rolls up across splits: perfect rollup. A retried partial writes under a fresh
attempt directory and returns the files it wrote; the merges read exactly the files of the results handed to them,
so a killed attempt's leftovers are never counted (they go with the task's partial directory at the end).
Every hand-off is a frozen model dumping to JSON (XCom), and :meth:`ParallelDefinition.run` chains the phases in
one process (``druidflow run``).
"""

from __future__ import annotations

import base64
import logging
import math
import shutil
import uuid
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from pydantic import Field

from druidflow.exceptions import RetryableError, SpecError
from druidflow.ingest.builder import IncrementalIndex, persist_codec, tune_allocator
from druidflow.ingest.hashing import buckets_of
from druidflow.ingest.parse import BUCKET, CHUNK, HASH, RowParser
from druidflow.ingest.partitioning import HyperLogLog, ShardPlan, hashed_shards, in_range, range_keys, range_shards, row_hashes
from druidflow.segments.shardspec import with_core_partitions
from druidflow.ingest.stats import RowStats
from druidflow.inputs import open_input
from druidflow.inputs.splits import InputSplit, narrowed_source, parse_split_hint, plan_splits, split_objects
from druidflow.intervals import Interval
from druidflow.specs.base import DruidModel
from druidflow.specs.dimensions import DimensionSchema
from druidflow.specs.tasks import IndexTask
from druidflow.specs.unsupported import refuse_non_defaults
from druidflow.tasks import index, protocol
from druidflow.tasks.index import BuildResult, ChunkPlan, IndexPlan, IndexReport
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)

PARTIALS = "_partials"
DEFAULT_MAX_RETRY = 3  # Druid's maxRetry
#: The parallel-only tuning fields this engine honours (the others stay refused unless at their default).
HONOURED = frozenset({"max_num_concurrent_sub_tasks", "max_retry", "split_hint_spec", "total_num_merge_tasks"})


# ---------------------------------------------------------------------------------------------- hand-offs


class ParallelPlan(DruidModel):
    """The splits, and — once known — the chunks with their versions and shards."""

    task_id: str
    data_source: str
    splits: list[InputSplit]
    chunks: list[ChunkPlan] = Field(default_factory=list)
    chunks_known: bool = False
    scan: bool = False  # a scan phase must run before the partials (statistics or intervals needed)
    row_stats: RowStats = Field(default_factory=RowStats)  # the scan phase's counters (determinePartitions)
    unparseable_events: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def scan_splits(self) -> list[InputSplit]:
        return self.splits if self.scan else []


class SplitScan(DruidModel):
    """One split's statistics: chunks with rows, a distinct-rows sketch (hashed) or value counts (range) per chunk."""

    split: int
    chunks: list[int] = Field(default_factory=list)
    sketches: dict[str, str] = Field(default_factory=dict)
    value_counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    row_stats: RowStats = Field(default_factory=RowStats)
    unparseable_events: list[dict[str, Any]] = Field(default_factory=list)


class PartialFile(DruidModel):
    chunk_start: int
    partition_num: int
    load_spec: dict[str, Any]
    rows: int


class PartialResult(DruidModel):
    """What one split's (successful) partial attempt wrote."""

    task_id: str
    split: int
    attempt: str
    files: list[PartialFile] = Field(default_factory=list)
    dimensions: list[dict[str, Any]] = Field(default_factory=list)
    multi_value: list[str] = Field(default_factory=list)
    row_stats: RowStats = Field(default_factory=RowStats)
    unparseable_events: list[dict[str, Any]] = Field(default_factory=list)


class MergeUnit(DruidModel):
    """One merge sub-task: one (chunk, partition) — or one whole chunk for dynamic partitioning — and the partial
    files to merge for it; several of them when ``totalNumMergeTasks`` caps the number of merge sub-tasks."""

    task_id: str
    chunks: list[ChunkPlan]  # each with this unit's one shard of it, or none (dynamic)
    files: list[list[dict[str, Any]]] = Field(default_factory=list)  # per entry of ``chunks``
    numbering: dict[str, dict[str, int]] = Field(default_factory=dict)  # chunk start -> hash bucket -> partitionNum
    dimensions: list[dict[str, Any]] = Field(default_factory=list)
    multi_value: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        parts = []
        for c in self.chunks:
            parts.append(f"{c.interval}" + (f"#{c.shards[0].partition_num}/{c.shards[0].num_partitions}" if c.shards else ""))
        return ",".join(parts)


class FinalPlan(IndexPlan):
    """What publish needs: the chunks written, and the partial phase's counters for the report."""

    build_row_stats: RowStats = Field(default_factory=RowStats)
    build_unparseable_events: list[dict[str, Any]] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------------- steps


def _partitions(task: IndexTask) -> Any:
    return task.spec.tuning_config.effective_partitions_spec


def _concurrency(task: IndexTask) -> int:
    return task.spec.tuning_config.max_num_concurrent_sub_tasks or 1


def max_retry(task: IndexTask) -> int:
    value = task.spec.tuning_config.max_retry
    return DEFAULT_MAX_RETRY if value is None else value


def plan(task: IndexTask, rt: Runtime) -> ParallelPlan:
    """Split the input once; with intervals and a partitioning that needs no statistics, decide the chunks now."""
    io = task.spec.io_config
    hint = parse_split_hint(task.spec.tuning_config.split_hint_spec)
    splits = plan_splits(io.input_source, io.input_format, hint, _concurrency(task))
    partitions = _partitions(task)
    chunks = task.spec.data_schema.granularity_spec.bucket_intervals()
    scan = partitions.type in ("single_dim", "range") or (partitions.type == "hashed" and partitions.num_shards is None)
    the_plan = ParallelPlan(task_id=task.task_id, data_source=task.data_source, splits=splits, scan=scan)
    if not scan and chunks is not None:
        return decide(task, the_plan, [], rt)
    return the_plan


def scan(task: IndexTask, the_plan: ParallelPlan, split: InputSplit, rt: Runtime) -> SplitScan:
    """One split's pass of Druid's partial_dimension_cardinality / partial_dimension_distribution phase."""
    schema = task.spec.data_schema
    partitions = _partitions(task)
    chunks = schema.granularity_spec.bucket_intervals()
    parser = RowParser(schema, list_delimiter=index._list_delimiter(task), chunks=chunks, handler=index._parse_handler(task))
    ranged = partitions.type in ("single_dim", "range")
    hashed = partitions.type == "hashed"
    sketches: dict[int, HyperLogLog] = {}
    counts: dict[int, dict[str, int]] = {}
    found: set[int] = set()
    stats = RowStats()
    for batch in _split_batches(task, split):
        parsed = parser.parse(batch.data, batch.unparseable, batch.bytes_read)
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
    partitions = _partitions(task)
    chunks = gran.bucket_intervals()
    if chunks is None and not the_plan.scan:
        return the_plan  # dynamic or hashed numShards without intervals: the partials find the chunks
    seg = gran.segment_granularity
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
    versions = index._chunk_versions(task, rt, chunks)
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
            "unparseable_events": _cap(task, events),
        }
    )


def _hll(encoded: str) -> HyperLogLog:
    hll = HyperLogLog()
    hll.registers = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).copy()
    return hll


def _cap(task: IndexTask, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = task.spec.tuning_config.max_saved_parse_exceptions
    return events[-keep:] if keep else []


def _split_batches(task: IndexTask, split: InputSplit) -> Any:
    io = task.spec.io_config
    if io.input_source.type == "druid":
        raise SpecError("spec.ioConfig.inputSource.type", "druid", "index_parallel reads files; re-index segments with a compact or index task")
    dictionary = pa.dictionary(pa.int32(), pa.string())
    reader = open_input(
        narrowed_source(io.input_source, split), io.input_format, column_types={d: dictionary for d in index._string_dimensions(task)}
    )
    return reader.read_objects(split_objects(reader.objects(), split, reader.input_format))


def partial_prefix(task_id: str) -> str:
    return f"{PARTIALS}/{task_id.replace('/', '_')}"


class _PartialAssigner:
    """Maps parsed rows to a dense group id per (chunk start, partition number), found as rows arrive."""

    def __init__(self, task: IndexTask, the_plan: ParallelPlan, parser: RowParser) -> None:
        self.parser = parser
        self.partitions = _partitions(task)
        self.shards = {c.interval.start: c.shards for c in the_plan.chunks}
        self.ids: dict[tuple[int, int], int] = {}
        self.keys: list[tuple[int, int]] = []

    def __call__(self, table: pa.Table) -> np.ndarray:
        chunks = table.column(CHUNK).to_numpy()
        out = np.full(table.num_rows, -1, dtype=np.int64)
        starts = np.unique(chunks)
        for start in starts:
            rows = np.flatnonzero(chunks == start) if len(starts) > 1 else np.arange(table.num_rows)
            part = table.take(pa.array(rows)) if len(starts) > 1 else table
            nums = self._partition_nums(int(start), part)
            lookup = {int(p): self._id(int(start), int(p)) for p in np.unique(nums) if p >= 0}
            ids = np.full(len(nums), -1, dtype=np.int64)
            for p, gid in lookup.items():
                ids[nums == p] = gid
            out[rows] = ids
        return out

    def _id(self, start: int, partition: int) -> int:
        key = (start, partition)
        if key not in self.ids:
            self.ids[key] = len(self.keys)
            self.keys.append(key)
        return self.ids[key]

    def _partition_nums(self, start: int, rows: pa.Table) -> np.ndarray:
        kind = self.partitions.type
        if kind == "dynamic":
            return np.zeros(rows.num_rows, dtype=np.int64)
        shards = self.shards.get(start)
        if kind == "hashed":
            if shards is None:
                shards = self.shards[start] = hashed_shards(self.partitions.num_shards, self.partitions.partition_dimensions)
            return buckets_of(rows.column(HASH).to_numpy(), shards[0].num_partitions)
        out = np.full(rows.num_rows, -1, dtype=np.int64)
        if shards:
            keys = range_keys(rows, shards[0].partition_dimensions)
            for shard in shards:
                out[in_range(keys, shard)] = shard.partition_num
        return out


def partial(task: IndexTask, the_plan: ParallelPlan, split: InputSplit, rt: Runtime, attempt: Optional[str] = None) -> PartialResult:
    """Druid's partial segment generation for one split: rows bucketed and rolled up per (chunk, partition), pushed
    to the attempt's own directory in deep storage (never where another attempt wrote)."""
    schema = task.spec.data_schema
    tuning = task.spec.tuning_config
    attempt = attempt or uuid.uuid4().hex
    chunks = [c.interval for c in the_plan.chunks] if the_plan.chunks_known else None
    partitions = _partitions(task)
    hashed = list(partitions.partition_dimensions) if partitions.type == "hashed" else None
    parser = RowParser(
        schema, list_delimiter=index._list_delimiter(task), chunks=chunks, handler=index._parse_handler(task), hash_partition_dimensions=hashed
    )
    assigner = _PartialAssigner(task, the_plan, parser)
    parser.assign = assigner
    scratch = rt.scratch(f"{task.task_id[:40]}-partial-")
    prefix = f"{partial_prefix(task.task_id)}/split-{split.index}/{attempt}"
    files: list[PartialFile] = []
    codec = persist_codec(tuning.effective_index_spec_for_intermediate_persists)
    seq = [0]

    def sink(group: int, table: pa.Table) -> None:
        start, partition = assigner.keys[group]
        seq[0] += 1
        path = scratch / f"{group}-{seq[0]}.arrow"
        with pa.OSFile(str(path), "wb") as out, ipc.new_file(out, table.schema, options=ipc.IpcWriteOptions(compression=codec)) as w:
            w.write_table(table)
        load_spec = rt.storage.push(path, f"{prefix}/{start}-{partition}-{seq[0]}.arrow")
        path.unlink(missing_ok=True)
        files.append(PartialFile(chunk_start=start, partition_num=partition, load_spec=dict(load_spec), rows=table.num_rows))

    tune_allocator()
    try:
        built: Optional[IncrementalIndex] = None
        stats = RowStats()
        for batch in _split_batches(task, split):
            parsed = parser.parse(batch.data, batch.unparseable, batch.bytes_read)
            stats = stats.plus(parsed.stats)
            if built is None:
                built = _index(task, parser, scratch / "persists", sink, lambda groups: None, max_total_rows=None)
            built.add(parsed.table.drop_columns([CHUNK]))
        if built is not None:
            built.finish()
        return PartialResult(
            task_id=task.task_id,
            split=split.index,
            attempt=attempt,
            files=files,
            dimensions=[d.model_dump() for d in parser.dimensions or []],
            multi_value=sorted(parser.multi_value_dimensions),
            row_stats=stats,
            unparseable_events=parser.handler.saved_reports(),
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _index(task: IndexTask, parser: RowParser, work_dir: Any, sink: Any, flush_done: Any, *, max_total_rows: Optional[int]) -> IncrementalIndex:
    schema = task.spec.data_schema
    tuning = task.spec.tuning_config
    return IncrementalIndex(
        dimensions=[d.name for d in parser.dimensions or []],
        metrics=parser.metrics,
        work_dir=work_dir,
        sink=sink,
        flush_done=flush_done,
        rollup=schema.rollup,
        time_step=index._fixed_step(schema.granularity_spec.query_granularity),
        max_rows_in_memory=tuning.max_rows_in_memory,
        max_bytes_in_memory=tuning.effective_max_bytes_in_memory() or 0,
        max_total_rows=max_total_rows,
        group_column=BUCKET,
        persist_compression=persist_codec(tuning.effective_index_spec_for_intermediate_persists),
    )


def merges(task: IndexTask, the_plan: ParallelPlan, results: Sequence[PartialResult], rt: Runtime) -> list[MergeUnit]:
    """One merge unit per (chunk, partition) over exactly the files of ``results`` (one per split: its successful
    attempt). Chunks found only now (no intervals, no scan) are locked here."""
    results = _one_per_split(the_plan, results)
    files = [f for r in results for f in r.files]
    dims, multi = _union_dimensions(results)
    chunks = list(the_plan.chunks)
    if not the_plan.chunks_known:
        seg = task.spec.data_schema.granularity_spec.segment_granularity
        found = [seg.bucket(st) for st in sorted({f.chunk_start for f in files})]
        if found:
            index.acquire_locks(task, rt, found)
        versions = index._chunk_versions(task, rt, found)
        partitions = _partitions(task)
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
    # Druid numbers a chunk's non-empty hash buckets 0..N-1 (here in bucket order: splits see rows in no one order).
    numbering: dict[int, dict[int, int]] = {}
    for c, _ in pieces:
        if c.shards and c.shards[0].type == "hashed":
            numbering.setdefault(c.interval.start, {})
    for start, nums in numbering.items():
        ids = sorted(c.shards[0].partition_num for c, _ in pieces if c.interval.start == start and c.shards)
        nums.update({b: i for i, b in enumerate(ids)})
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
    schema = task.spec.data_schema
    parser = RowParser(schema, list_delimiter=index._list_delimiter(task))
    parser.dimensions = [DimensionSchema.parse(d) for d in unit.dimensions]
    parser.multi_value_dimensions = set(unit.multi_value)
    shard = chunk.shards[0] if chunk.shards else None
    scratch = rt.scratch(f"{task.task_id[:40]}-merge-")
    tune_allocator()
    try:
        sink = index._SegmentSink(task, rt, [(chunk, shard)], scratch / "segments", parser, _Numbering(unit.numbering))  # type: ignore[arg-type]
        partitions = _partitions(task)
        built = _index(task, parser, scratch / "persists", sink.write, sink.close_buckets, max_total_rows=getattr(partitions, "max_total_rows", None))
        template = parser.empty_table(parser.dimensions).drop_columns([CHUNK])
        for load_spec in files:
            with rt.storage.open_local(load_spec) as path:
                table = ipc.open_file(pa.memory_map(str(path))).read_all()
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
    """The ``partition_num`` lookup :class:`~druidflow.tasks.index._SegmentSink` asks its assigner for."""

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
        build_unparseable_events=_cap(task, events),
    )


def cleanup(task_id: str, rt: Runtime) -> int:
    """Delete every partial file of the task (any attempt's); returns how many."""
    n = 0
    for _key, _size, load_spec in list(rt.storage.list_keys(partial_prefix(task_id) + "/")):
        n += bool(rt.storage.delete(load_spec))
    return n


# --------------------------------------------------------------------------------------------- definition


class ParallelDefinition(index.IndexDefinition):
    """``index_parallel`` on the task protocol: the publish plan, report and locks of ``index``; its own phases."""

    task_types = ("index_parallel",)
    plan_model = FinalPlan
    unit_model = MergeUnit
    result_model = BuildResult
    report_model = IndexReport

    def check(self, task: IndexTask, rt: Runtime) -> None:
        refuse_non_defaults(task, allowed=HONOURED)
        index._check_writable(task, refuse=False)
        index._check_local_input(task)
        if task.spec.io_config.input_source.type == "druid":
            raise SpecError("spec.ioConfig.inputSource.type", "druid", "index_parallel reads files; re-index segments with a compact or index task")
        if task.spec.tuning_config.type != "index_parallel":
            raise SpecError("spec.tuningConfig.type", task.spec.tuning_config.type, "an index_parallel task takes tuningConfig type index_parallel")
        parse_split_hint(task.spec.tuning_config.split_hint_spec)

    def plan(self, task: IndexTask, rt: Runtime) -> ParallelPlan:
        return plan(task, rt)

    def build(self, task: IndexTask, the_plan: Any, unit: MergeUnit, rt: Runtime) -> BuildResult:
        return merge(task, unit, rt)

    def unit_label(self, unit: Any) -> str:
        return unit.label

    def publish_plan(self, task: IndexTask, the_plan: FinalPlan, results: Sequence[BuildResult], rt: Runtime) -> protocol.PublishPlan:
        return index.publish_plan(task, the_plan, results)

    def report(self, task, the_plan, results, outcome, publish) -> IndexReport:  # type: ignore[no-untyped-def]
        build = BuildResult(task_id=task.task_id, segments=[], row_stats=the_plan.build_row_stats, unparseable_events=the_plan.build_unparseable_events)
        reports = index.index_report(task.task_id, the_plan, [build], len(publish.segments))
        return IndexReport(task_id=task.task_id, data_source=task.data_source, status="SUCCESS", segments=publish.segments, reports=reports)

    def run(self, task: IndexTask, rt: Runtime, *, timeout_s: float = 0, **options: Any) -> IndexReport:
        """Every phase in this process, one split after another (``druidflow run``)."""
        if options:
            raise SpecError("options", sorted(options), f"not accepted by {task.type}")
        protocol.submit(task, rt, self)
        try:
            with rt.lockbox.keep_alive(task.task_id):
                protocol.acquire_locks(task, rt, self, timeout_s=timeout_s)
                the_plan = plan(task, rt)
                if the_plan.scan:
                    the_plan = decide(task, the_plan, [_retrying(task, scan, task, the_plan, s, rt) for s in the_plan.splits], rt)
                partials = [_retrying(task, partial, task, the_plan, s, rt) for s in the_plan.splits]
                units = merges(task, the_plan, partials, rt)
                results = [merge(task, u, rt) for u in units]
                return protocol.publish(task, final_plan(task, the_plan, units, partials), results, rt, self)
        except BaseException as exc:
            protocol.fail(task.task_id, exc, rt)
            raise
        finally:
            cleanup(task.task_id, rt)
            protocol.release(task.task_id, rt)


def _retrying(task: IndexTask, step: Any, *args: Any) -> Any:
    """A sub-task retried up to ``maxRetry`` times on a retryable error, as Druid's supervisor task does."""
    for attempt in range(max_retry(task) + 1):
        try:
            return step(*args)
        except RetryableError as exc:
            if attempt == max_retry(task):
                raise
            log.warning("task %s: a sub-task failed (%s); retrying (%d/%d)", task.task_id, exc, attempt + 1, max_retry(task))
    raise AssertionError("unreachable")


DEFINITION = ParallelDefinition()


def run(spec: Any, rt: Runtime) -> IndexReport:
    return DEFINITION.run(DEFINITION.parse_task(spec, ""), rt)
