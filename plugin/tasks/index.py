"""The ``index`` task, as steps with explicit, serialisable hand-offs.

    submit ─▶ acquire_locks ─▶ determine_partitions ─▶ build (one call per BuildUnit) ─▶ publish ─▶ release

Each step is a plain function of its inputs plus the :class:`Runtime`, and each hand-off (``IndexTask``,
``IndexPlan``, ``BuildUnit``, ``BuildResult``, ``IndexReport``) is a frozen model that dumps to JSON, so the
Airflow operators can run the steps in different processes and pass descriptors through XCom. ``run_local``
chains them in one process (the CLI and the benchmark).

Druid's rules kept here: intervals expand outward to whole segment buckets and rows outside are thrown away;
the determine pass runs exactly when intervals are missing (or hashed partitioning needs row counts);
overwrite segments take the version of the task's lock on their chunk, appended ones the version of the
chunk's existing segments; publish is one metadata transaction inside the lock critical section, all or
nothing, and publishing the same segments again is a no-op.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from druidflow.exceptions import LockRevokedError, LockUnavailableError, SpecError
from druidflow.ingest.builder import IncrementalIndex, persist_codec, tune_allocator
from druidflow.ingest.hashing import buckets_of
from druidflow.ingest.parse import BUCKET, CHUNK, HASH, RowParser
from druidflow.ingest.partitioning import (
    HyperLogLog,
    ShardPlan,
    hashed_shards,
    in_range,
    range_keys,
    range_shards,
    row_hashes,
)
from druidflow.ingest.rollup import compact_dictionaries
from druidflow.ingest.prefetch import prefetched
from druidflow.ingest.task_input import druid_sources, file_sources, open_task_input
from druidflow.ingest.stats import UNLIMITED, ParseExceptionHandler, RowStats
from druidflow.intervals import Interval, condense
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.format import SegmentFileWriter
from druidflow.segments.ids import segment_id, storage_dir
from druidflow.segments.shardspec import NumberedShardSpec, with_core_partitions
from druidflow.specs.base import DruidModel
from druidflow.specs.tasks import IndexTask
from druidflow.specs.unknown_keys import spec_warnings
from druidflow.specs.unsupported import refuse_non_defaults
from druidflow.tasks import protocol
from druidflow.tasks.report import ingestion_report, no_valid_rows_message
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)

SEGMENT_FILE = "index.parquet"
LOCK_CHECK_SECONDS = 1.0
OVERSHADOWED_BY_REINDEX = "overshadowed-by-reindex"


class ChunkPlan(DruidModel):
    """A time chunk the task writes, the version its overwrite segments get (from the task's lock), and its
    shards: none for dynamic partitioning (segments cut by size), else every hashed or range shard."""

    interval: Interval
    version: str
    shards: list[ShardPlan] = Field(default_factory=list)


class BuildUnit(DruidModel):
    """One independently buildable piece of the task: a time chunk, or one shard of it (one mapped Airflow task
    each). ``chunks[i].shards`` lists only the shards this unit builds."""

    task_id: str
    chunks: list[ChunkPlan]
    all_chunks: list[Interval] = Field(default_factory=list)  # every chunk of the task (what is not thrown away)
    primary: bool = True  # the one unit that counts rows no unit owns (thrown away, unparseable)

    @property
    def label(self) -> str:
        parts = []
        for c in self.chunks:
            shard = f"#{c.shards[0].partition_num}/{c.shards[0].num_partitions}" if len(c.shards) == 1 else ""
            parts.append(f"{c.interval}{shard}")
        return ",".join(parts)


class IndexPlan(DruidModel):
    """What determine-partitions decided: the chunks, their versions and the build units."""

    task_id: str
    data_source: str
    chunks: list[ChunkPlan]
    build_units: list[BuildUnit]
    determined_intervals: bool = False
    row_stats: RowStats = Field(default_factory=RowStats)
    unparseable_events: list[dict[str, Any]] = Field(default_factory=list)


class BuildResult(DruidModel):
    """The segments one build unit pushed to deep storage (not yet published), with its row counters."""

    task_id: str
    segments: list[DataSegment]
    row_stats: RowStats = Field(default_factory=RowStats)
    unparseable_events: list[dict[str, Any]] = Field(default_factory=list)
    persists: int = 0


class IndexReport(DruidModel):
    """The outcome of a published task: its segments and Druid's ``ingestionStatsAndErrors`` report."""

    task_id: str
    data_source: str
    status: str
    segments: list[DataSegment]
    reports: dict[str, Any]


# ---------------------------------------------------------------------------------------------------- steps


def submit(spec: Any, rt: Runtime) -> IndexTask:
    """Parse and validate an index task (raising :class:`SpecError` before any work) and record it as RUNNING."""
    return protocol.submit(DEFINITION.parse_task(spec, ""), rt, DEFINITION)


def _check_local_input(task: IndexTask) -> None:
    """A local input that names no readable file fails here, once, not in every build that would read it."""
    from druidflow.inputs.sources import list_objects

    for source in file_sources(task.spec.io_config.input_source):
        if source.type == "local":
            list_objects(source)


def _check_writable(task: IndexTask, refuse: bool = True) -> None:
    if refuse:
        refuse_non_defaults(task)
    own = [s for s in druid_sources(task.spec.io_config.input_source) if s.data_source == task.data_source]
    source = next((s for s in own if s.segments is None), None)
    if task.lock_type == "REPLACE" and source is not None:
        # Rows appended concurrently would be both re-read and upgraded into the new version: counted twice.
        raise SpecError(
            "spec.ioConfig.inputSource.interval",
            str(source.interval),
            "re-indexing an interval of a dataSource's own segments under useConcurrentLocks would read rows that "
            "are appended meanwhile and also upgrade them; name the segments (inputSource.segments) or use a compact task",
        )
    index_spec = task.spec.tuning_config.index_spec
    for field_name, value in (("dimensionCompression", index_spec.dimension_compression), ("metricCompression", index_spec.metric_compression)):
        if str(value).lower() == "lzf":
            raise SpecError(
                f"spec.tuningConfig.indexSpec.{field_name}", value, "lzf has no Parquet codec; use lz4, zstd or uncompressed"
            )


def acquire_locks(task: IndexTask, rt: Runtime, intervals: Optional[Sequence[Interval]] = None, *, timeout_s: float = 0) -> list[Any]:
    """Lock the task's (condensed) chunk intervals, all or none (see :func:`druidflow.tasks.protocol.acquire_locks`).

    Raises :class:`LockUnavailableError` (retry later) or :class:`LockRevokedError` (give up).
    """
    if intervals is None:
        return protocol.acquire_locks(task, rt, DEFINITION, timeout_s=timeout_s)
    return protocol.acquire_locks(task, rt, requests=protocol.lock_requests_for(task, intervals), timeout_s=timeout_s)


def determine_partitions(task: IndexTask, rt: Runtime) -> IndexPlan:
    """Decide the chunks, their shards and the build units.

    The input is read first exactly when Druid would: when no intervals are given (to find the chunks, which are
    locked afterwards) or when the partitioning needs statistics (hashed without ``numShards``: distinct rows per
    chunk; ``single_dim``/``range``: the values to cut at).
    """
    gran = task.spec.data_schema.granularity_spec
    partitions = task.spec.tuning_config.effective_partitions_spec
    chunks = gran.bucket_intervals()
    stats = RowStats()
    events: list[dict[str, Any]] = []
    determined = chunks is None
    shards: dict[Interval, list[ShardPlan]] = {}
    if determined or partitions.needs_determine_partitions or partitions.type in ("single_dim", "range"):
        found, shards, stats, events = _determine(task, rt, chunks)
        if determined:
            chunks = found
            if chunks:
                acquire_locks(task, rt, chunks)
    if partitions.type == "hashed" and partitions.num_shards is not None:
        shards = {c: hashed_shards(partitions.num_shards, partitions.partition_dimensions) for c in chunks or []}
    versions = _chunk_versions(task, rt, chunks or [])
    plans = [ChunkPlan(interval=c, version=versions[c], shards=shards.get(c, [])) for c in chunks or []]
    pieces = [p.model_copy(update={"shards": [sh]}) for p in plans for sh in p.shards] if any(p.shards for p in plans) else plans
    all_chunks = [p.interval for p in plans]
    units = [
        BuildUnit(task_id=task.task_id, chunks=group, all_chunks=all_chunks, primary=i == 0)
        for i, group in enumerate(_group_pieces(pieces, _max_concurrent_builds(task)))
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


def _max_concurrent_builds(task: IndexTask) -> Optional[int]:
    tuning = task.spec.tuning_config
    return tuning.max_num_concurrent_sub_tasks if tuning.type == "index_parallel" else None


def _group_pieces(pieces: list[ChunkPlan], limit: Optional[int]) -> list[list[ChunkPlan]]:
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


def _chunk_versions(task: IndexTask, rt: Runtime, chunks: Sequence[Interval]) -> dict[Interval, str]:
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


def _parse_handler(task: IndexTask, log_errors: bool = True, saved: bool = True) -> ParseExceptionHandler:
    tuning = task.spec.tuning_config
    max_exc, max_saved = tuning.max_parse_exceptions, tuning.max_saved_parse_exceptions if saved else 0
    if tuning.report_parse_exceptions:
        max_exc, max_saved = 0, min(1, max_saved)
    return ParseExceptionHandler(
        max_parse_exceptions=max_exc if max_exc is not None else UNLIMITED,
        max_saved=max_saved or 0,
        log=log if (tuning.log_parse_exceptions and log_errors) else None,
    )


def _reader(task: IndexTask, rt: Runtime, dimensions: Sequence[str] = ()):
    """The input reader; declared string dimensions are read dictionary-encoded, which rollup then only unifies.

    A ``druid`` input source re-reads this deployment's own segments (compaction, re-indexing).
    """
    io = task.spec.io_config
    dictionary = pa.dictionary(pa.int32(), pa.string())
    return open_task_input(
        io.input_source,
        io.input_format,
        store=rt.store,
        storage=rt.storage,
        timestamp_column=task.spec.data_schema.timestamp_spec.column,
        column_types={d: dictionary for d in dimensions},
    )


def _string_dimensions(task: IndexTask) -> list[str]:
    spec = task.spec.data_schema.dimensions_spec
    return [d.name for d in spec.dimension_schemas if d.type == "string"]


def _list_delimiter(task: IndexTask) -> Optional[str]:
    return getattr(task.spec.io_config.input_format, "list_delimiter", None)


def _determine(task: IndexTask, rt: Runtime, chunks: Optional[list[Interval]]):
    """The determine-partitions pass: the chunks with data, and each chunk's shards when statistics decide them."""
    schema = task.spec.data_schema
    partitions = task.spec.tuning_config.effective_partitions_spec
    parser = RowParser(schema, list_delimiter=_list_delimiter(task), chunks=chunks, handler=_parse_handler(task))
    stats = RowStats()
    sketches: dict[int, HyperLogLog] = {}
    value_counts: dict[int, dict[str, int]] = {}
    ranged = partitions.type in ("single_dim", "range")
    hashed = partitions.type == "hashed" and partitions.num_shards is None
    for batch in _reader(task, rt, _string_dimensions(task)).batches():
        parsed = parser.parse(batch.data, batch.unparseable, batch.bytes_read, batch.times, batch.non_flat_fields)
        stats = stats.plus(parsed.stats)
        table = parsed.table
        if not table.num_rows:
            continue
        chunk_col = table.column("__chunk").to_numpy()
        for chunk in np.unique(chunk_col):
            rows = table.filter(pa.array(chunk_col == chunk)) if len(np.unique(chunk_col)) > 1 else table
            if hashed:
                keys = ["__time"] + [d.name for d in parser.dimensions or []]
                sketches.setdefault(int(chunk), HyperLogLog()).add_hashes(row_hashes(rows, keys))
            elif ranged:
                counts = value_counts.setdefault(int(chunk), {})
                vc = pc.value_counts(range_keys(rows, partitions.partition_dimensions))
                for value, count in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                    counts[value] = counts.get(value, 0) + count
            else:
                sketches.setdefault(int(chunk), None)  # type: ignore[arg-type]
    seg = schema.granularity_spec.segment_granularity
    starts = sorted(set(sketches) | set(value_counts))
    by_start = {c.start: c for c in chunks} if chunks else {}
    found = [by_start.get(st) or seg.bucket(st) for st in starts]
    shards: dict[Interval, list[ShardPlan]] = {}
    for st, chunk in zip(starts, found):
        if hashed:
            rows = max(sketches[st].estimate(), 1)
            n = max(1, math.ceil(rows / partitions.target_rows_per_segment))
            shards[chunk] = hashed_shards(n, partitions.partition_dimensions)
        elif ranged:
            kind = "single" if partitions.type == "single_dim" else "range"
            shards[chunk] = range_shards(
                value_counts[st],
                kind,
                partitions.partition_dimensions,
                partitions.effective_target_rows_per_segment,
                partitions.effective_max_rows_per_segment,
            )
    return found, shards, stats, parser.handler.saved_reports()


def build(task: IndexTask, unit: BuildUnit, rt: Runtime) -> BuildResult:
    """Read the input, keep the rows of the unit's chunks, roll them up and push their segments."""
    return build_units(task, [unit], rt)


def build_units(task: IndexTask, units: Sequence[BuildUnit], rt: Runtime) -> BuildResult:
    """Build several units in one pass over the input (what ``run`` does with all of them)."""
    schema = task.spec.data_schema
    tuning = task.spec.tuning_config
    buckets = [(c, sh) for u in units for c in u.chunks for sh in (c.shards or [None])]
    if not buckets:
        return BuildResult(task_id=task.task_id, segments=[])
    all_chunks = sorted({iv for u in units for iv in (u.all_chunks or [c.interval for c in u.chunks])})
    primary = any(u.primary for u in units)
    handler = _parse_handler(task) if primary else _parse_handler(task, saved=False)
    partitions = tuning.effective_partitions_spec
    hashed = partitions.type == "hashed"
    parser = RowParser(
        schema,
        list_delimiter=_list_delimiter(task),
        chunks=all_chunks,
        handler=handler,
        count_unowned=primary,
        hash_partition_dimensions=list(partitions.partition_dimensions) if hashed else None,
    )
    assigner = _BucketAssigner(buckets, parser, partitions)
    parser.assign = assigner
    if hashed:
        from druidflow.ingest.murmur import warm_up_in_background

        warm_up_in_background()
    scratch = rt.scratch(f"{task.task_id[:40]}-build-")
    tune_allocator()
    try:
        sink = _SegmentSink(task, rt, buckets, scratch / "segments", parser, assigner)
        index: Optional[IncrementalIndex] = None
        stats = RowStats()
        for batch in prefetched(_reader(task, rt, _string_dimensions(task)).batches()):
            parsed = parser.parse(batch.data, batch.unparseable, batch.bytes_read, batch.times, batch.non_flat_fields)
            stats = stats.plus(parsed.stats)
            if index is None:
                index = IncrementalIndex(
                    dimensions=[d.name for d in parser.dimensions or []],
                    metrics=parser.metrics,
                    work_dir=scratch / "persists",
                    sink=sink.write,
                    flush_done=sink.close_buckets,
                    rollup=schema.rollup,
                    time_step=_fixed_step(schema.granularity_spec.query_granularity),
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


def push_key(segment: DataSegment) -> str:
    """The deep-storage key of one push attempt of ``segment``: Druid's directory plus a unique suffix, so that no
    attempt (a retried or re-run build) ever writes where another, perhaps published, attempt wrote."""
    directory = storage_dir(segment.data_source, segment.interval, segment.version, segment.partition_num)
    return f"{directory}/{uuid.uuid4().hex}/{SEGMENT_FILE}"


class _BucketAssigner:
    """Maps parsed rows to this build's output buckets, one per (chunk, shard): Druid's hash recipe for hashed
    shards, the shard's value range for single_dim/range shards, the chunk alone for dynamic partitioning.
    Rows of a chunk or shard that another build unit builds get -1."""

    def __init__(self, buckets: list[tuple[ChunkPlan, Optional[ShardPlan]]], parser: RowParser, partitions: Any) -> None:
        self.parser = parser
        self.by_chunk: dict[int, list[tuple[Optional[ShardPlan], int]]] = {}
        for i, (chunk, shard) in enumerate(buckets):
            self.by_chunk.setdefault(chunk.interval.start, []).append((shard, i))
        # Per chunk start: the hash buckets that got a row, in the order their first row arrived. Every build unit
        # hashes every row of its chunks, so all units agree on it whichever buckets they build.
        self.arrival: dict[int, dict[int, int]] = {}
        dynamic = sorted((start, wanted[0][1]) for start, wanted in self.by_chunk.items() if wanted[0][0] is None)
        self.all_dynamic = len(dynamic) == len(self.by_chunk)
        self.dynamic_starts = np.array([s for s, _ in dynamic], dtype=np.int64)
        self.dynamic_buckets = np.array([b for _, b in dynamic], dtype=np.int64)

    def partition_num(self, chunk_start: int, bucket_id: int) -> int:
        """Druid's ``partitionNum`` of a non-empty hash bucket: its rank by first arrival in the chunk."""
        return self.arrival[chunk_start][bucket_id]

    def __call__(self, table: pa.Table) -> np.ndarray:
        chunks = table.column(CHUNK).to_numpy()
        if self.all_dynamic:
            # A dynamic bucket is its whole chunk: one lookup per row, no per-chunk copies of the table.
            pos = np.minimum(np.searchsorted(self.dynamic_starts, chunks), len(self.dynamic_starts) - 1)
            return np.where(self.dynamic_starts[pos] == chunks, self.dynamic_buckets[pos], -1)
        out = np.full(table.num_rows, -1, dtype=np.int64)
        for start in np.unique(chunks):
            wanted = self.by_chunk.get(int(start))
            if not wanted:
                continue
            rows = np.flatnonzero(chunks == start)
            part = table.take(pa.array(rows)) if len(rows) != table.num_rows else table
            out[rows] = self._buckets(part, wanted, int(start))
        return out

    def _buckets(self, rows: pa.Table, wanted: list[tuple[Optional[ShardPlan], int]], start: int) -> np.ndarray:
        first = wanted[0][0]
        if first is None:
            return np.full(rows.num_rows, wanted[0][1], dtype=np.int64)
        if first.type == "hashed":
            shard_of = buckets_of(rows.column(HASH).to_numpy(), first.num_partitions)
            arrival = self.arrival.setdefault(start, {})
            ids, first_rows = np.unique(shard_of, return_index=True)
            for bucket_id in ids[np.argsort(first_rows)].tolist():
                arrival.setdefault(bucket_id, len(arrival))
            lookup = np.full(first.num_partitions, -1, dtype=np.int64)
            for shard, bucket in wanted:
                lookup[shard.partition_num] = bucket  # type: ignore[union-attr]
            return lookup[shard_of]
        keys = range_keys(rows, first.partition_dimensions)
        out = np.full(rows.num_rows, -1, dtype=np.int64)
        for shard, bucket in wanted:
            out[in_range(keys, shard)] = bucket  # type: ignore[arg-type]
        return out


def _fixed_step(granularity: Any) -> Optional[int]:
    """The bucket width in ms when every bucket has the same width (no months, years or time-zone shifts)."""
    kind = getattr(granularity, "kind", None)
    if kind == "duration":
        return granularity.duration
    if kind == "period":
        period = granularity.period
        tz = granularity.time_zone
        if period.calendar_months == 0 and (tz is None or tz.is_utc or tz.is_fixed):
            return period.fixed_ms or None
    return None


class _SegmentSink:
    """Receives sorted rows per output bucket and cuts them into segment files, pushing each to deep storage.

    A dynamic bucket (a whole chunk) is cut into segments of at most ``maxRowsPerSegment`` rows, numbered in
    order; a hashed or range bucket is exactly one segment whose shard spec the plan fixed in advance.
    """

    def __init__(
        self,
        task: IndexTask,
        rt: Runtime,
        buckets: list[tuple[ChunkPlan, Optional[ShardPlan]]],
        out_dir: Path,
        parser: RowParser,
        assigner: _BucketAssigner,
    ) -> None:
        self.task = task
        self.assigner = assigner
        self.rt = rt
        self.buckets = buckets
        self.out_dir = out_dir
        self.parser = parser
        tuning = task.spec.tuning_config
        partitions = tuning.effective_partitions_spec
        self.max_rows = getattr(partitions, "max_rows_per_segment", None) or 5_000_000
        self.index_spec = tuning.index_spec
        self.append = task.spec.io_config.append_to_existing
        self.open: dict[int, tuple[SegmentFileWriter, int]] = {}
        self.next_partition: dict[int, int] = {}
        self.previous_id: dict[int, str] = {}
        self.written: set[int] = set()
        self.segments: list[DataSegment] = []
        self.lock_checked: dict[Interval, float] = {}

    def write(self, bucket: int, table) -> None:
        shard = self.buckets[bucket][1]
        offset = 0
        while offset < table.num_rows:
            writer, _ = self._writer(bucket)
            take = table.num_rows - offset if shard is not None else min(self.max_rows - writer.rows, table.num_rows - offset)
            # The builder hands over rows whose dictionaries hold only their values; a cut needs trimming again.
            piece = table if take == table.num_rows else compact_dictionaries(table.slice(offset, take))
            writer.write(piece)
            offset += take
            if shard is None and writer.rows >= self.max_rows:
                self._close(bucket)

    def _writer(self, bucket: int) -> tuple[SegmentFileWriter, int]:
        if bucket not in self.open:
            partition = self.next_partition.get(bucket, 0)
            self.next_partition[bucket] = partition + 1
            path = self.out_dir / f"{bucket}-{partition}.parquet"
            writer = SegmentFileWriter(
                path,
                dimensions=[d.name for d in self.parser.dimensions or []],
                multi_value=frozenset(self.parser.multi_value_dimensions),
                dimension_compression=self.index_spec.dimension_compression,
                metric_compression=self.index_spec.metric_compression,
                long_encoding=self.index_spec.long_encoding,
            )
            self.open[bucket] = (writer, partition)
        return self.open[bucket]

    def close_buckets(self, buckets: Sequence[int]) -> None:
        for bucket in buckets:
            if bucket in self.open:
                self._close(bucket)

    def close_all(self) -> None:
        self.close_buckets(list(self.open))

    def fill_empty_shards(self) -> None:
        """A range that got no row still gets its (empty) segment, so the chunk's core partition set stays
        complete and the new version becomes visible. An empty hash bucket gets none: Druid publishes only the
        buckets that got rows, numbered 0..N-1, and N is the core partition count."""
        for bucket, (_, shard) in enumerate(self.buckets):
            if shard is not None and shard.type != "hashed" and bucket not in self.written:
                writer, _ = self._writer(bucket)
                writer.write(self._empty_table())
                self._close(bucket)

    def _empty_table(self) -> pa.Table:
        return self.parser.empty_table(self.parser.dimensions or []).drop_columns([CHUNK])

    def _close(self, bucket: int) -> None:
        writer, local_partition = self.open.pop(bucket)
        self.written.add(bucket)
        plan, shard = self.buckets[bucket]
        version, shard_spec = self._identity(plan, shard, bucket, local_partition)
        segment = self._descriptor(plan.interval, version, shard_spec, writer.rows)
        key = push_key(segment)
        segment = segment.model_copy(update={"load_spec": self.rt.storage.load_spec_for(key)})
        size = writer.close(segment)
        self._check_lock(plan.interval)
        load_spec = self.rt.storage.push(writer.path, key)
        writer.path.unlink(missing_ok=True)
        self.segments.append(segment.model_copy(update={"size": size, "load_spec": load_spec}))

    def _check_lock(self, interval: Interval) -> None:
        """A revoked lock makes the file worthless: stop before pushing it (the publish would refuse it anyway).
        Checked at most once a second per chunk: many small segments must not each pay a metadata query."""
        now = time.monotonic()
        if now - self.lock_checked.get(interval, -LOCK_CHECK_SECONDS) < LOCK_CHECK_SECONDS:
            return
        self.rt.lockbox.check_held(self.task.task_id, self.task.data_source, [interval])
        self.lock_checked[interval] = now

    def _identity(self, plan: ChunkPlan, shard: Optional[ShardPlan], bucket: int, local_partition: int):
        if shard is not None and shard.type == "hashed":
            return plan.version, shard.shard_spec(self.assigner.partition_num(plan.interval.start, shard.partition_num))
        if shard is not None:
            return plan.version, shard.shard_spec()
        if not self.append:
            return plan.version, NumberedShardSpec(partition_num=local_partition, partitions=0)
        allocated = self.rt.store.allocate_segment(
            self.task.data_source,
            plan.interval,
            sequence_name=f"{self.task.task_id}_{plan.interval}",
            previous_segment_id=self.previous_id.get(bucket, ""),
            lock_version=plan.version,
            task_allocator_id=self.task.task_id,
            skip_lineage_check=False,  # each new segment of the sequence chains on the previous one, as Druid's batch tasks do
        )
        self.previous_id[bucket] = segment_id(self.task.data_source, plan.interval, allocated.version, allocated.partition_num)
        return allocated.version, allocated.shard_spec

    def _descriptor(self, interval: Interval, version: str, shard_spec: Any, rows: int) -> DataSegment:
        schema = self.task.spec.data_schema
        return DataSegment(
            data_source=self.task.data_source,
            interval=interval,
            version=version,
            dimensions=",".join(d.name for d in self.parser.dimensions or []),
            metrics=",".join(a.name for a in schema.metrics_spec),
            shard_spec=shard_spec,
            num_rows=rows,
            aggregators=[a.model_dump() for a in schema.metrics_spec],
            rollup=schema.rollup,
            query_granularity=schema.granularity_spec.query_granularity.to_json(),
        )


def publish(task: IndexTask, plan: IndexPlan, results: Sequence[BuildResult], rt: Runtime) -> IndexReport:
    """Publish every built segment in one metadata transaction, inside the lock critical section.

    Overwrite segments get their chunk's core partition count filled in (partitions 0..N-1), so a chunk switches
    to the new version only once all of them are published — which this single transaction guarantees. With
    ``dropExisting``, every chunk of the intervals that got no row but holds used data gets a tombstone. Under
    concurrent locks, an APPEND-locked publish also copies its segments into newer versions replaced
    meanwhile, and a REPLACE-locked one copies what was appended under its lock (:mod:`druidflow.metadata.upgrade`).

    Publishing the same segments again is a no-op, and so is publishing segment ids that are already published
    (a build re-run after its publish): the new attempt's files are deleted. Files of a publish that definitely
    failed (revoked lock, conflict) are deleted too; an error in the commit itself leaves them alone.
    """
    return protocol.publish(task, plan, results, rt, DEFINITION)


def publish_plan(task: IndexTask, plan: IndexPlan, results: Sequence[BuildResult]) -> protocol.PublishPlan:
    """The segments of every build with their chunks' core partition counts; overwriting marks what they
    overshadow unused (``overshadowed-by-reindex``), so that kill can find it; ``dropExisting`` asks for tombstones."""
    segments = [s for r in results for s in r.segments]
    append = task.spec.io_config.append_to_existing
    if not append:
        # Dynamic and hashed segments learn their chunk's core partition count only now (range ones knew it).
        per_chunk: dict[Interval, int] = {}
        for s in segments:
            per_chunk[s.interval] = per_chunk.get(s.interval, 0) + 1
        segments = [
            s.model_copy(update={"shard_spec": with_core_partitions(s.shard_spec, per_chunk[s.interval])})
            if s.shard_spec.type in ("numbered", "hashed")
            else s
            for s in segments
        ]
    drop = [protocol.ChunkVersion(interval=c.interval, version=c.version) for c in plan.chunks] if task.spec.io_config.drop_existing else []
    return protocol.PublishPlan(
        task_id=task.task_id,
        data_source=task.data_source,
        lock_intervals=condense([c.interval for c in plan.chunks]) if plan.chunks else [],
        segments=segments,
        overshadowed_reason=None if append else OVERSHADOWED_BY_REINDEX,
        drop_existing_chunks=drop,
    )


def index_report(task_id: str, plan: IndexPlan, results: Sequence[BuildResult], published: int, **extra: Any) -> dict[str, Any]:
    """Druid's ``ingestionStatsAndErrors`` report of the plan's and the builds' row counters."""
    build_stats = RowStats()
    events: list[dict[str, Any]] = []
    for r in results:
        build_stats = build_stats.plus(r.row_stats)
        events.extend(r.unparseable_events)
    # Without intervals and without any valid row, no chunk was found and the rows were only counted while determining.
    read = build_stats.processed + build_stats.processed_with_error + build_stats.unparseable + build_stats.thrown_away
    message = no_valid_rows_message(build_stats if read else plan.row_stats, published)
    if message is not None:
        log.warning("task %s: %s", task_id, message)
        extra.setdefault("error", message)
    return ingestion_report(
        task_id,
        state="COMPLETED",
        determine=(plan.row_stats, plan.unparseable_events),
        build=(build_stats, events),
        segments_published=published,
        **extra,
    )


release = protocol.release
heartbeat = protocol.heartbeat
fail = protocol.fail


class IndexDefinition(protocol.TaskDefinition):
    """``index`` (and ``index_parallel``) on the task protocol."""

    task_types = ("index", "index_parallel")
    plan_model = IndexPlan
    unit_model = BuildUnit
    result_model = BuildResult
    report_model = IndexReport

    def check(self, task: IndexTask, rt: Runtime) -> None:
        _check_writable(task)
        _check_local_input(task)

    def lock_requests(self, task: IndexTask, rt: Runtime) -> list[protocol.LockRequest]:
        # Without intervals the chunks are found (and locked) by determine_partitions.
        return protocol.lock_requests_for(task, task.spec.data_schema.granularity_spec.bucket_intervals() or [])

    def plan(self, task: IndexTask, rt: Runtime) -> IndexPlan:
        return determine_partitions(task, rt)

    def build(self, task: IndexTask, plan: IndexPlan, unit: BuildUnit, rt: Runtime) -> BuildResult:
        return build(task, unit, rt)

    def build_all(self, task: IndexTask, plan: IndexPlan, rt: Runtime) -> list[BuildResult]:
        return [build_units(task, plan.build_units, rt)]  # one pass over the input for every unit

    def publish_plan(self, task: IndexTask, plan: IndexPlan, results: Sequence[BuildResult], rt: Runtime) -> protocol.PublishPlan:
        return publish_plan(task, plan, results)

    def published_before(self, task: IndexTask, rt: Runtime) -> bool:
        # An appending task's re-run build got fresh ids: publishing them would add its rows a second time.
        if not task.spec.io_config.append_to_existing:
            return False
        record = rt.store.get_task(task.task_id)
        return record is not None and record.status == "SUCCESS"

    def report(self, task, plan, results, outcome, publish) -> IndexReport:
        reports = index_report(task.task_id, plan, results, len(publish.segments), warnings=spec_warnings(task))
        return IndexReport(task_id=task.task_id, data_source=task.data_source, status="SUCCESS", segments=publish.segments, reports=reports)


DEFINITION = IndexDefinition()


def run(spec: Any, rt: Runtime) -> IndexReport:
    """Every step in this process: the CLI's ``druidflow run`` and the benchmark."""
    return DEFINITION.run(DEFINITION.parse_task(spec, ""), rt)


def run_local(spec: dict[str, Any], *, metadata_url: Optional[str] = None, deep_storage: Optional[str] = None) -> dict[str, Any]:
    """Run an index task in-process against the given metadata DB and deep storage; return the report."""
    rt = Runtime.from_urls(metadata_url, deep_storage)
    return run(spec, rt).model_dump()
