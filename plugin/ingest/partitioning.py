"""Secondary partitioning of a time chunk into shards: the plan (``ShardPlan``) and the statistics behind it.

* ``hashed``: ``numShards`` buckets per chunk by Druid's hash recipe (:mod:`druidflow.ingest.hashing`); only the
  buckets that get rows become segments, numbered as Druid numbers them (by first arrival). When
  only a target size is given, the determine pass estimates each chunk's distinct post-rollup rows with a
  HyperLogLog sketch, as Druid does, and sets ``numShards = ceil(rows / target)``. The sketch keeps memory
  fixed (16 KiB per chunk) however large the input; its error is about 1 %, so shard counts may differ from an
  exact count by one on boundaries.
* ``single_dim`` / ``range``: the determine pass counts rows per value (tuple) of the partition dimensions
  and cuts the sorted values into consecutive ranges of about ``targetRowsPerSegment`` rows each. Counts are
  of input rows; with heavy rollup the shards come out smaller than the target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.specs.base import DruidModel

HLL_P = 14
_HLL_M = 1 << HLL_P
_MIX = np.uint64(0x9E3779B97F4A7C15)

# Range keys join tuple values with a byte below every character, and mark present values so that null (absent)
# sorts first: tuple order and key order agree.
_JOIN = "\x00"
_PRESENT = "\x01"


class ShardPlan(DruidModel):
    """One shard of a chunk: which rows it takes and the shard spec its segment gets."""

    type: str  # hashed | single | range
    partition_num: int  # hashed: the bucket id
    num_partitions: int
    partition_dimensions: list[str] = []
    start: Optional[list[Optional[str]]] = None  # range bounds (inclusive start, exclusive end); None = unbounded
    end: Optional[list[Optional[str]]] = None

    def shard_spec(self, partition_num: Optional[int] = None) -> dict[str, Any]:
        """The segment's shard spec. A hashed plan's ``partition_num`` is its bucket id; the segment's
        ``partitionNum`` is given here (Druid numbers a chunk's non-empty buckets 0, 1, ... in the order their
        first row arrives), and its core partition count is filled in at publish."""
        if self.type == "hashed":
            return {
                "type": "hashed",
                "partitionNum": self.partition_num if partition_num is None else partition_num,
                "partitions": 0,
                "bucketId": self.partition_num,
                "numBuckets": self.num_partitions,
                "partitionDimensions": self.partition_dimensions,
                "partitionFunction": "murmur3_32_abs",
            }
        if self.type == "single":
            return {
                "type": "single",
                "dimension": self.partition_dimensions[0],
                "start": None if self.start is None else self.start[0],
                "end": None if self.end is None else self.end[0],
                "partitionNum": self.partition_num,
                "numCorePartitions": self.num_partitions,
            }
        return {
            "type": "range",
            "dimensions": self.partition_dimensions,
            "start": self.start,
            "end": self.end,
            "partitionNum": self.partition_num,
            "numCorePartitions": self.num_partitions,
        }


def hashed_shards(num_shards: int, partition_dimensions: Sequence[str]) -> list[ShardPlan]:
    return [
        ShardPlan(type="hashed", partition_num=i, num_partitions=num_shards, partition_dimensions=list(partition_dimensions))
        for i in range(num_shards)
    ]


# --------------------------------------------------------------------------------------------- row hashing


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + _MIX
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _column_hash(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A 64-bit hash of each row's value: distinct values hashed once, then taken per row."""
    if isinstance(col, pa.ChunkedArray):
        col = col.unify_dictionaries().combine_chunks() if pa.types.is_dictionary(col.type) else col.combine_chunks()
    encoded = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
    values = encoded.dictionary
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        dict_hash = _splitmix(values.cast(pa.float64()).to_numpy(zero_copy_only=False).view(np.uint64))
    else:
        import mmh3

        dict_hash = np.fromiter(
            (mmh3.hash64(v or "", 0, signed=False)[0] for v in values.cast(pa.string()).to_pylist()),
            dtype=np.uint64,
            count=len(values),
        )
    idx = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.where(idx >= 0, dict_hash[np.maximum(idx, 0)] if len(dict_hash) else 0, np.uint64(0x5BD1E995))
    return out.astype(np.uint64)


def row_hashes(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """A 64-bit hash per row of the values in ``columns`` (order matters), for distinct counting."""
    h = np.zeros(table.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in columns:
            h = _splitmix(h * np.uint64(31) + _column_hash(table.column(name)))
    return h


class HyperLogLog:
    """A HyperLogLog sketch with 2^14 registers (about 0.8 % standard error), updated with numpy."""

    def __init__(self) -> None:
        self.registers = np.zeros(_HLL_M, dtype=np.uint8)

    def add_hashes(self, hashes: np.ndarray) -> None:
        if len(hashes) == 0:
            return
        idx = (hashes >> np.uint64(64 - HLL_P)).astype(np.int64)
        rest = hashes & np.uint64((1 << (64 - HLL_P)) - 1)
        hi = (rest >> np.uint64(32)).astype(np.float64)
        lo = (rest & np.uint64(0xFFFFFFFF)).astype(np.float64)
        bits = np.where(hi > 0, np.frexp(hi)[1] + 32, np.frexp(lo)[1])  # bit length of rest (0 when rest == 0)
        rank = ((64 - HLL_P) - bits + 1).astype(np.uint8)
        np.maximum.at(self.registers, idx, rank)

    def merge(self, other: HyperLogLog) -> None:
        np.maximum(self.registers, other.registers, out=self.registers)

    def estimate(self) -> int:
        m = float(_HLL_M)
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / np.sum(np.power(2.0, -self.registers.astype(np.float64)))
        zeros = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * m and zeros:
            raw = m * math.log(m / zeros)  # linear counting for small cardinalities
        return int(round(raw))


# --------------------------------------------------------------------------------------------- range keys


def range_keys(table: pa.Table, dimensions: Sequence[str]) -> pa.Array:
    """A string per row that sorts like the tuple of the partition dimensions' values (null first)."""
    parts = []
    for d in dimensions:
        if d in table.column_names:
            col = table.column(d)
            col = col.unify_dictionaries().combine_chunks() if pa.types.is_dictionary(col.type) else col.combine_chunks()
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            if not pa.types.is_string(col.type):
                col = col.cast(pa.string())
            parts.append(pc.fill_null(pc.binary_join_element_wise(_PRESENT, col, ""), ""))
        else:
            parts.append(pa.array([""] * table.num_rows, pa.string()))
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, _JOIN)


def decode_range_key(key: str, n: int) -> list[Optional[str]]:
    values = key.split(_JOIN) if n > 1 else [key]
    return [v[1:] if v.startswith(_PRESENT) else None for v in values]


def encode_range_bound(bound: Optional[Sequence[Optional[str]]]) -> Optional[str]:
    if bound is None:
        return None
    return _JOIN.join("" if v is None else _PRESENT + v for v in bound)


def range_shards(
    counts: dict[str, int], kind: str, dimensions: Sequence[str], target: int, max_rows: Optional[int] = None
) -> list[ShardPlan]:
    """Cut sorted key counts into consecutive shards of about ``target`` rows (never above ``max_rows`` when set)."""
    keys = sorted(counts)
    cuts: list[str] = []
    acc = 0
    limit = max_rows or target
    for key in keys:
        c = counts[key]
        if acc and (acc >= target or acc + c > limit):
            cuts.append(key)
            acc = 0
        acc += c
    n = len(cuts) + 1
    bounds: list[Optional[str]] = [None] + cuts + [None]
    shards = []
    for i in range(n):
        lo, hi = bounds[i], bounds[i + 1]
        start = None if lo is None else decode_range_key(lo, len(dimensions))
        end = None if hi is None else decode_range_key(hi, len(dimensions))
        shards.append(
            ShardPlan(type=kind, partition_num=i, num_partitions=n, partition_dimensions=list(dimensions), start=start, end=end)
        )
    return shards


def in_range(keys: pa.Array, shard: ShardPlan) -> np.ndarray:
    """Which keys fall in the shard's ``[start, end)`` (an unbounded side always matches)."""
    encoded = pc.dictionary_encode(keys)
    distinct = encoded.dictionary
    ok = np.ones(len(distinct), dtype=bool)
    if shard.start is not None:
        ok &= pc.greater_equal(distinct, pa.scalar(encode_range_bound(shard.start), pa.string())).to_numpy(zero_copy_only=False)
    if shard.end is not None:
        ok &= pc.less(distinct, pa.scalar(encode_range_bound(shard.end), pa.string())).to_numpy(zero_copy_only=False)
    return ok[encoded.indices.to_numpy(zero_copy_only=False)]
