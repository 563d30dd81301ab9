"""The partial phase of ``index_parallel`` (Druid's partial segment generation): one split's rows parsed, bucketed
by (time chunk, partition) as the plan decided, rolled up, and written to the attempt's own directory in deep
storage under ``_partials/<task>/split-<n>/<attempt>/``."""

from __future__ import annotations

import itertools
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.ipc as ipc

from druidflow.ingest.builder import IncrementalIndex, persist_codec, tune_allocator
from druidflow.ingest.hashing import buckets_of
from druidflow.ingest.parse import BUCKET, CHUNK, HASH, RowParser
from druidflow.ingest.partitioning import hashed_shards, in_range, range_keys
from druidflow.ingest.stats import RowStats
from druidflow.inputs.batch import InputBatch
from druidflow.inputs.splits import InputSplit
from druidflow.specs.tasks import IndexTask
from druidflow.tasks import index
from druidflow.tasks.parallel.handoffs import ParallelPlan, PartialFile, PartialResult, partial_prefix, partitions_spec
from druidflow.tasks.parallel.split_planning import split_batches
from druidflow.tasks.runtime import Runtime


class _PartialAssigner:
    """Maps parsed rows to a dense group id per (chunk start, partition number), found as rows arrive, and notes
    the split's row position where each group's first row arrived (the hashed numbering of the merge phase)."""

    def __init__(self, task: IndexTask, the_plan: ParallelPlan) -> None:
        self.partitions = partitions_spec(task)
        self.shards = {c.interval.start: c.shards for c in the_plan.chunks}
        self.ids: dict[tuple[int, int], int] = {}
        self.keys: list[tuple[int, int]] = []
        self.first_rows: list[int] = []  # per group id
        self.rows_seen = 0

    def __call__(self, table: pa.Table) -> npt.NDArray[np.int64]:
        chunks = table.column(CHUNK).to_numpy()
        out = np.full(table.num_rows, -1, dtype=np.int64)
        starts = np.unique(chunks)
        for start in starts:
            rows = np.flatnonzero(chunks == start) if len(starts) > 1 else np.arange(table.num_rows)
            part = table.take(pa.array(rows)) if len(starts) > 1 else table
            nums = self._partition_nums(int(start), part)
            found, first = np.unique(nums, return_index=True)
            lookup = np.full(int(found.max(initial=-1)) + 2, -1, dtype=np.int64)  # partition -1 maps to -1
            for p, at in zip(found.tolist(), first.tolist(), strict=True):
                if p >= 0:
                    lookup[p] = self._id(int(start), p, self.rows_seen + int(rows[at]))
            out[rows] = lookup[nums]
        self.rows_seen += table.num_rows
        return out

    def arrivals(self) -> list[tuple[int, int, int]]:
        """(chunk start, partition number, the split's row position of its first row) of every group."""
        return [(start, partition, self.first_rows[i]) for i, (start, partition) in enumerate(self.keys)]

    def _id(self, start: int, partition: int, first_row: int) -> int:
        key = (start, partition)
        if key not in self.ids:
            self.ids[key] = len(self.keys)
            self.keys.append(key)
            self.first_rows.append(first_row)
        return self.ids[key]

    def _partition_nums(self, start: int, rows: pa.Table) -> npt.NDArray[np.int64]:
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


class PartialBuilder:
    """One split's partial build: rows parsed, bucketed per (chunk, partition) and rolled up; each rolled-up piece is
    handed to ``sink(chunk_start, partition_num, table)``. ``index_parallel`` writes pieces to deep storage, the
    Spark build streams them into its shuffle."""

    def __init__(self, task: IndexTask, the_plan: ParallelPlan, scratch: Path, sink: Callable[[int, int, pa.Table], None]) -> None:
        chunks = [c.interval for c in the_plan.chunks] if the_plan.chunks_known else None
        partitions = partitions_spec(task)
        hashed = list(partitions.partition_dimensions) if partitions.type == "hashed" else None
        self.task = task
        self.parser = RowParser(
            task.spec.data_schema,
            list_delimiter=index.list_delimiter(task),
            chunks=chunks,
            handler=index.parse_handler(task),
            hash_partition_dimensions=hashed,
        )
        self.assigner = _PartialAssigner(task, the_plan)
        self.parser.assign = self.assigner
        self.stats = RowStats()
        self.rows: dict[tuple[int, int], int] = {}
        self._scratch = scratch
        self._sink = sink
        self._built: Optional[IncrementalIndex] = None
        self._lock = threading.Lock()

    def add(self, batch: InputBatch) -> None:
        parsed = self.parser.parse(
            batch.data, batch.unparseable, batch.bytes_read, batch.times, batch.non_flat_fields, batch.integral_numbers
        )
        self.stats = self.stats.plus(parsed.stats)
        if self._built is None:
            self._built = incremental_index(self.task, self.parser, self._scratch / "persists", self._piece, lambda groups: None, max_total_rows=None)
        self._built.add(parsed.table.drop_columns([CHUNK]))

    def finish(self) -> None:
        if self._built is not None:
            self._built.finish()

    def result(self, split: int, attempt: str, files: list[PartialFile]) -> PartialResult:
        return PartialResult(
            task_id=self.task.task_id,
            split=split,
            attempt=attempt,
            files=files,
            dimensions=[d.model_dump() for d in self.parser.dimensions or []],
            multi_value=sorted(self.parser.multi_value_dimensions),
            arrivals=self.assigner.arrivals(),
            row_stats=self.stats,
            unparseable_events=self.parser.handler.saved_reports(),
        )

    def _piece(self, group: int, table: pa.Table) -> None:
        key = self.assigner.keys[group]
        with self._lock:  # the index's final merge calls this from one thread per chunk
            self.rows[key] = self.rows.get(key, 0) + table.num_rows
        self._sink(key[0], key[1], table)


def partial(task: IndexTask, the_plan: ParallelPlan, split: InputSplit, rt: Runtime, attempt: Optional[str] = None) -> PartialResult:
    """Druid's partial segment generation for one split: rows bucketed and rolled up per (chunk, partition), pushed
    to the attempt's own directory in deep storage (never where another attempt wrote)."""
    attempt = attempt or uuid.uuid4().hex
    scratch = rt.scratch(f"{task.task_id[:40]}-partial-")
    prefix = f"{partial_prefix(task.task_id)}/split-{split.index}/{attempt}"
    files: list[PartialFile] = []
    codec = persist_codec(task.spec.tuning_config.effective_index_spec_for_intermediate_persists)

    pieces = itertools.count(1)  # the sink may be called from the index's persist threads: names must not clash

    def push(start: int, partition: int, table: pa.Table) -> None:
        seq = next(pieces)
        path = scratch / f"{seq}.arrow"
        with pa.OSFile(str(path), "wb") as out, ipc.new_file(out, table.schema, options=ipc.IpcWriteOptions(compression=codec)) as w:
            w.write_table(table)
        load_spec = rt.storage.push(path, f"{prefix}/{start}-{partition}-{seq}.arrow")
        path.unlink(missing_ok=True)
        files.append(PartialFile(chunk_start=start, partition_num=partition, load_spec=dict(load_spec), rows=table.num_rows))

    tune_allocator()
    try:
        builder = PartialBuilder(task, the_plan, scratch, push)
        for batch in split_batches(task, split, rt):
            builder.add(batch)
        builder.finish()
        return builder.result(split.index, attempt, files)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def incremental_index(
    task: IndexTask,
    parser: RowParser,
    work_dir: Path,
    sink: Callable[[int, pa.Table], None],
    flush_done: Callable[[Any], None],
    *,
    max_total_rows: Optional[int],
) -> IncrementalIndex:
    schema = task.spec.data_schema
    tuning = task.spec.tuning_config
    return IncrementalIndex(
        dimensions=[d.name for d in parser.dimensions or []],
        metrics=parser.metrics,
        work_dir=work_dir,
        sink=sink,
        flush_done=flush_done,
        rollup=schema.rollup,
        time_step=index.fixed_step(schema.granularity_spec.query_granularity),
        max_rows_in_memory=tuning.max_rows_in_memory,
        max_bytes_in_memory=tuning.effective_max_bytes_in_memory() or 0,
        max_total_rows=max_total_rows,
        group_column=BUCKET,
        persist_compression=persist_codec(tuning.effective_index_spec_for_intermediate_persists),
    )
