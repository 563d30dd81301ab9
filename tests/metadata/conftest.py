"""Fixtures for the metadata store: a migrated store on each backend, and a compact segment factory."""

from __future__ import annotations

import pytest

from druidflow.intervals import Interval
from druidflow.metadata.store import MetadataStore
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.ids import storage_dir
from druidflow.segments.shardspec import NumberedShardSpec


@pytest.fixture
def store(db_url) -> MetadataStore:
    """A freshly migrated store, on SQLite and on PostgreSQL."""
    s = MetadataStore(db_url)
    s.migrate()
    yield s
    s.engine.dispose()


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
