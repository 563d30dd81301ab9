"""Where a build's rolled-up rows become segments: files cut per output bucket, pushed to deep storage under a
key unique to the attempt, each with its descriptor (not yet published)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Protocol

import pyarrow as pa

from druidflow.ingest.parse import CHUNK, RowParser
from druidflow.ingest.partitioning import ShardPlan
from druidflow.ingest.rollup import compact_dictionaries
from druidflow.intervals import Interval
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.format import SegmentFileWriter
from druidflow.segments.ids import segment_id, storage_dir
from druidflow.segments.shardspec import NumberedShardSpec
from druidflow.specs.tasks import IndexTask
from druidflow.tasks.index_plan import ChunkPlan
from druidflow.tasks.runtime import Runtime

SEGMENT_FILE = "index.parquet"
LOCK_CHECK_SECONDS = 1.0


class PartitionNumbering(Protocol):
    """Where a hashed bucket's ``partitionNum`` comes from: the index task's :class:`BucketAssigner` (arrival
    order) or the merge phase's numbering decided across splits."""

    def partition_num(self, chunk_start: int, bucket_id: int) -> int: ...


def push_key(segment: DataSegment) -> str:
    """The deep-storage key of one push attempt of ``segment``: Druid's directory plus a unique suffix, so that no
    attempt (a retried or re-run build) ever writes where another, perhaps published, attempt wrote."""
    directory = storage_dir(segment.data_source, segment.interval, segment.version, segment.partition_num)
    return f"{directory}/{uuid.uuid4().hex}/{SEGMENT_FILE}"


class SegmentSink:
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
        assigner: PartitionNumbering,
    ) -> None:
        self.task = task
        self.assigner = assigner
        self.rt = rt
        self.buckets = buckets
        self.out_dir = out_dir
        self.parser = parser
        tuning = task.spec.tuning_config
        partitions = tuning.effective_partitions_spec
        self.max_rows: int = getattr(partitions, "max_rows_per_segment", None) or 5_000_000
        self.index_spec = tuning.index_spec
        self.append = task.spec.io_config.append_to_existing
        self.open: dict[int, tuple[SegmentFileWriter, int]] = {}
        self.next_partition: dict[int, int] = {}
        self.previous_id: dict[int, str] = {}
        self.written: set[int] = set()
        self.segments: list[DataSegment] = []
        self.lock_checked: dict[Interval, float] = {}

    def write(self, bucket: int, table: pa.Table) -> None:
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

    def _identity(self, plan: ChunkPlan, shard: Optional[ShardPlan], bucket: int, local_partition: int) -> tuple[str, Any]:
        """The version and shard spec of the segment a bucket's file becomes."""
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
