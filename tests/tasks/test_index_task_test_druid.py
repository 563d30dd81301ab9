"""Druid's own ``IndexTaskTest`` (apache/druid,
indexing-service/src/test/java/org/apache/druid/indexing/common/task/IndexTaskTest.java), retyped as index specs.

The test's helpers, retyped: ``createDefaultIngestionSpec`` reads CSV files ``druid*`` of a local directory with
columns ``ts,dim,val``, timestampSpec ``ts``/``auto``, dimensions ``["ts", "dim"]``, metric
``longSum("val", "val")`` and, when the test passes no granularitySpec, ``UniformGranularitySpec(DAY, MINUTE,
["2014/2015"])``. ``createTuningConfig(maxRowsPerSegment, maxRowsInMemory, maxBytesInMemory, maxTotalRows,
partitionsSpec, forceGuaranteedRollup, reportParseException)``; ``createTuningConfigWithMaxRowsPerSegment(n, f)``
is ``createTuningConfig(n, 1, null, null, null, f, true)`` and ``createTuningConfigWithPartitionsSpec(p, f)`` is
``createTuningConfig(null, 1, null, null, p, f, true)``. Each test below names the Druid test method it retypes
and asserts what that method asserts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pyarrow.compute as pc
import pytest

from druidflow.ingest.hashing import buckets_of
from druidflow.ingest.murmur import murmur3_32
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.tasks.test_index import rows_of
from tests.tasks.test_index_partitioning import segment_rows

THREE_ROWS = "2014-01-01T00:00:10Z,a,1\n2014-01-01T01:00:20Z,b,1\n2014-01-01T02:00:30Z,c,1\n"
# populateRollupTestData
ROLLUP_ROWS = (
    "2014-01-01T00:00:10Z,a,1\n"
    "2014-01-01T01:00:20Z,a,1\n"
    "2014-01-01T00:00:10Z,b,2\n"
    "2014-01-01T00:00:10Z,c,3\n"
    "2014-01-01T01:00:20Z,b,2\n"
    "2014-01-01T02:00:30Z,a,1\n"
    "2014-01-01T02:00:30Z,b,2\n"
    "2014-01-01T01:00:20Z,c,3\n"
    "2014-01-01T02:00:30Z,c,3\n"
)
DEFAULT_GRANULARITY = {"type": "uniform", "segmentGranularity": "DAY", "queryGranularity": "MINUTE", "intervals": ["2014/2015"]}


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def tuning(
    max_rows_per_segment: Optional[int],
    max_rows_in_memory: int,
    max_total_rows: Optional[int],
    partitions_spec: Optional[dict[str, Any]],
    force_guaranteed_rollup: bool,
) -> dict[str, Any]:
    """``createTuningConfig`` with ``maxBytesInMemory`` null and ``reportParseException`` true."""
    out: dict[str, Any] = {"type": "index", "maxRowsInMemory": max_rows_in_memory, "reportParseExceptions": True}
    if max_rows_per_segment is not None:
        out["maxRowsPerSegment"] = max_rows_per_segment
    if max_total_rows is not None:
        out["maxTotalRows"] = max_total_rows
    if partitions_spec is not None:
        out["partitionsSpec"] = partitions_spec
    out["forceGuaranteedRollup"] = force_guaranteed_rollup
    return out


def default_spec(base_dir: Path, data: str, granularity: Optional[dict[str, Any]], tuning_config: dict[str, Any]) -> dict[str, Any]:
    """``createDefaultIngestionSpec`` (the input-format form), the data written to a ``druid*`` file."""
    (base_dir / "druid123index").write_text(data)
    return {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "test",
                "timestampSpec": {"column": "ts", "format": "auto"},
                "dimensionsSpec": {"dimensions": ["ts", "dim"]},
                "metricsSpec": [{"type": "longSum", "name": "val", "fieldName": "val"}],
                "granularitySpec": granularity or DEFAULT_GRANULARITY,
            },
            "ioConfig": {
                "type": "index",
                "inputSource": {"type": "local", "baseDir": str(base_dir), "filter": "druid*"},
                "inputFormat": {"type": "csv", "columns": ["ts", "dim", "val"]},
                "appendToExisting": False,
            },
            "tuningConfig": tuning_config,
        },
    }


def run(rt: Runtime, spec: dict[str, Any]) -> list[Any]:
    report = index.run(spec, rt)
    assert report.status == "SUCCESS"
    return sorted(report.segments, key=lambda s: (s.interval.start, s.partition_num))


@pytest.fixture
def base_dir(tmp_path) -> Path:
    d = tmp_path / "input"
    d.mkdir()
    return d


def test_num_shards_provided(rt, base_dir):
    """testNumShardsProvided: ``HashedPartitionsSpec(null, 1, null)`` over 2014/2015 (365 DAY chunks) gives 1 segment."""
    segments = run(rt, default_spec(base_dir, THREE_ROWS, None, tuning(None, 1, None, {"type": "hashed", "numShards": 1}, True)))
    assert len(segments) == 1
    (s,) = segments
    assert s.data_source == "test" and str(s.interval) == "2014-01-01T00:00:00.000Z/2014-01-02T00:00:00.000Z"
    assert s.shard_spec.type == "hashed" and s.partition_num == 0
    assert s.shard_spec.partition_function == "murmur3_32_abs"


def test_num_shards_and_hash_partition_function_provided(rt, base_dir):
    """testNumShardsAndHashPartitionFunctionProvided: ``HashedPartitionsSpec(null, 1, null, MURMUR3_32_ABS)``."""
    partitions = {"type": "hashed", "numShards": 1, "partitionFunction": "murmur3_32_abs"}
    segments = run(rt, default_spec(base_dir, THREE_ROWS, None, tuning(None, 1, None, partitions, True)))
    assert len(segments) == 1
    (s,) = segments
    assert str(s.interval) == "2014-01-01T00:00:00.000Z/2014-01-02T00:00:00.000Z"
    assert s.shard_spec.type == "hashed" and s.partition_num == 0
    assert s.shard_spec.partition_function == "murmur3_32_abs"


def test_num_shards_and_partition_dimensions_provided(rt, base_dir):
    """testNumShardsAndPartitionDimensionsProvided: ``HashedPartitionsSpec(null, 2, ["dim"])`` over 365 chunks gives
    2 segments, and every row of a segment hashes (``serializeGroupKey([dim])``) to the same bucket."""
    partitions = {"type": "hashed", "numShards": 2, "partitionDimensions": ["dim"]}
    segments = run(rt, default_spec(base_dir, THREE_ROWS, None, tuning(None, 1, None, partitions, True)))
    assert len(segments) == 2
    for s in segments:
        assert str(s.interval) == "2014-01-01T00:00:00.000Z/2014-01-02T00:00:00.000Z"
        assert s.shard_spec.type == "hashed" and s.shard_spec.partition_function == "murmur3_32_abs"
        keys = [f'[["{r["dim"]}"]]' for r in segment_rows(rt, s)]
        import pyarrow as pa

        hashes = buckets_of(murmur3_32(pa.array(keys)), s.shard_spec.num_buckets).tolist()
        assert len(set(hashes)) == 1 and hashes[0] == s.shard_spec.bucket_id
    # Druid's numbering: the non-empty buckets are partitions 0..N-1 with N the core partition count.
    assert [s.partition_num for s in segments] == [0, 1]
    assert all(s.shard_spec.partitions == 2 and s.shard_spec.num_buckets == 2 for s in segments)
    assert sorted(s.shard_spec.bucket_id for s in segments) == [0, 1]
    assert len(rt.store.used_segments("test")) == 2


def test_determine_partitions(rt, base_dir):
    """testDeterminePartitions: ``createTuningConfigWithMaxRowsPerSegment(2, true)`` gives 2 hashed segments,
    partitionNum 0 and 1, numCorePartitions 2, MURMUR3_32_ABS."""
    segments = run(rt, default_spec(base_dir, THREE_ROWS, None, tuning(2, 1, None, None, True)))
    assert len(segments) == 2
    for i, s in enumerate(segments):
        assert s.data_source == "test" and str(s.interval) == "2014-01-01T00:00:00.000Z/2014-01-02T00:00:00.000Z"
        assert s.shard_spec.type == "hashed" and s.partition_num == i
        assert s.shard_spec.partitions == 2  # getNumCorePartitions
        assert s.shard_spec.partition_function == "murmur3_32_abs"


def test_with_arbitrary_granularity(rt, base_dir):
    """testWithArbitraryGranularity: ``ArbitraryGranularitySpec(MINUTE, ["2014-01-01/2014-01-02"])``,
    ``createTuningConfigWithMaxRowsPerSegment(10, true)``: 1 segment."""
    granularity = {"type": "arbitrary", "queryGranularity": "MINUTE", "intervals": ["2014-01-01/2014-01-02"]}
    assert len(run(rt, default_spec(base_dir, THREE_ROWS, granularity, tuning(10, 1, None, None, True)))) == 1


def test_interval_bucketing(rt, base_dir):
    """testIntervalBucketing: ``UniformGranularitySpec(HOUR, HOUR, ["2014-01-01T08:00:00Z/2014-01-01T09:00:00Z"])``,
    ``createTuningConfigWithMaxRowsPerSegment(50, true)``: the row before 08:00 is thrown away, 1 segment."""
    data = "2014-01-01T07:59:59.977Z,a,1\n2014-01-01T08:00:00.000Z,b,1\n"
    granularity = {
        "type": "uniform",
        "segmentGranularity": "HOUR",
        "queryGranularity": "HOUR",
        "intervals": ["2014-01-01T08:00:00Z/2014-01-01T09:00:00Z"],
    }
    assert len(run(rt, default_spec(base_dir, data, granularity, tuning(50, 1, None, None, True)))) == 1


def test_interval_not_specified(rt, base_dir):
    """testIntervalNotSpecified: ``UniformGranularitySpec(HOUR, MINUTE, null)``, maxRowsPerSegment 2, perfect
    rollup: 3 HOUR segments, each hashed partition 0."""
    granularity = {"type": "uniform", "segmentGranularity": "HOUR", "queryGranularity": "MINUTE"}
    segments = run(rt, default_spec(base_dir, THREE_ROWS, granularity, tuning(2, 1, None, None, True)))
    assert [str(s.interval) for s in segments] == [
        f"2014-01-01T0{h}:00:00.000Z/2014-01-01T0{h + 1}:00:00.000Z" for h in range(3)
    ]
    assert all(s.shard_spec.type == "hashed" and s.partition_num == 0 for s in segments)


def test_perfect_rollup(rt, base_dir):
    """testPerfectRollup: ``UniformGranularitySpec(DAY, DAY, true, null)``, ``createTuningConfig(3, 2, null, 2L,
    null, true, true)``: 3 hashed segments of 2014-01-01, partitionNum 0, 1, 2. Druid ignores maxTotalRows under
    perfect rollup; this branch still refuses it there (accepting it is the unknown-keys item of issue 21), so it
    is left out here."""
    granularity = {"type": "uniform", "segmentGranularity": "DAY", "queryGranularity": "DAY", "rollup": True}
    segments = run(rt, default_spec(base_dir, ROLLUP_ROWS, granularity, tuning(3, 2, None, None, True)))
    assert len(segments) == 3
    for i, s in enumerate(segments):
        assert str(s.interval) == "2014-01-01T00:00:00.000Z/2014-01-02T00:00:00.000Z"
        assert s.shard_spec.type == "hashed" and s.partition_num == i
    assert pc.sum(rows_of(rt, "test")["val"]).as_py() == 18


def test_best_effort_rollup(rt, base_dir):
    """testBestEffortRollup: the same with ``forceGuaranteedRollup`` false (``createTuningConfig(3, 2, null, 2L,
    null, false, true)``): maxTotalRows 2 pushes every 2 rows, so 5 numbered segments, partitionNum 0..4."""
    granularity = {"type": "uniform", "segmentGranularity": "DAY", "queryGranularity": "DAY", "rollup": True}
    segments = run(rt, default_spec(base_dir, ROLLUP_ROWS, granularity, tuning(3, 2, 2, None, False)))
    assert len(segments) == 5
    for i, s in enumerate(segments):
        assert str(s.interval) == "2014-01-01T00:00:00.000Z/2014-01-02T00:00:00.000Z"
        assert s.shard_spec.type == "numbered" and s.partition_num == i
    assert pc.sum(rows_of(rt, "test")["val"]).as_py() == 18
