"""A compact factory of segments for the metadata-store tests."""

from __future__ import annotations

from druidflow.intervals import Interval
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.ids import storage_dir
from druidflow.segments.shardspec import NumberedShardSpec


def make_segment(interval, version="2024-02-01T00:00:00.000Z", partition=0, partitions=0, ds="wiki", shard=None, **extra):
    """A segment with a local loadSpec at its Druid storage path."""
    iv = Interval.parse(interval)
    return DataSegment(
        data_source=ds,
        interval=iv,
        version=version,
        shard_spec=shard or NumberedShardSpec(partition_num=partition, partitions=partitions),
        load_spec={"type": "local", "path": f"/deep/{storage_dir(ds, iv, version, partition)}/index.parquet"},
        dimensions="page,user",
        metrics="count,added",
        size=extra.pop("size", 1000 + partition),
        num_rows=extra.pop("num_rows", 10),
        **extra,
    )
