"""Which output bucket of a build each parsed row goes to: one bucket per (time chunk, shard) the build writes."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pyarrow as pa

from druidflow.ingest.hashing import buckets_of
from druidflow.ingest.parse import CHUNK, HASH, RowParser
from druidflow.ingest.partitioning import ShardPlan, in_range, range_keys
from druidflow.tasks.index_plan import ChunkPlan


class BucketAssigner:
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
        hashes = table.column(HASH).to_numpy() if HASH in table.column_names else None
        for start in np.unique(chunks):
            wanted = self.by_chunk.get(int(start))
            if not wanted:
                continue
            rows = np.flatnonzero(chunks == start)
            whole = len(rows) == table.num_rows
            first = wanted[0][0]
            if first is not None and first.type == "hashed" and hashes is not None:
                out[rows] = self._hashed(hashes if whole else hashes[rows], wanted, int(start))
                continue
            part = table if whole else table.take(pa.array(rows))
            out[rows] = self._buckets(part, wanted, int(start))
        return out

    def _hashed(self, hashes: np.ndarray, wanted: list[tuple[Optional[ShardPlan], int]], start: int) -> np.ndarray:
        """Hashed shards: each row's bucket from its Druid hash (only the hash column is needed, no copy of rows)."""
        first = wanted[0][0]
        assert first is not None
        shard_of = buckets_of(hashes, first.num_partitions)
        arrival = self.arrival.setdefault(start, {})
        ids, first_rows = np.unique(shard_of, return_index=True)
        for bucket_id in ids[np.argsort(first_rows)].tolist():
            arrival.setdefault(bucket_id, len(arrival))
        lookup = np.full(first.num_partitions, -1, dtype=np.int64)
        for shard, bucket in wanted:
            if shard is not None:
                lookup[shard.partition_num] = bucket
        result: np.ndarray = lookup[shard_of]
        return result

    def _buckets(self, rows: pa.Table, wanted: list[tuple[Optional[ShardPlan], int]], start: int) -> np.ndarray:
        first = wanted[0][0]
        if first is None:
            return np.full(rows.num_rows, wanted[0][1], dtype=np.int64)
        shards = [(shard, bucket) for shard, bucket in wanted if shard is not None]
        if first.type == "hashed":
            return self._hashed(rows.column(HASH).to_numpy(), wanted, start)
        keys = range_keys(rows, first.partition_dimensions)
        out = np.full(rows.num_rows, -1, dtype=np.int64)
        for shard, bucket in shards:
            out[in_range(keys, shard)] = bucket
        return out
