"""Migration df_narrow: the shard type and core partition count as columns, backfilled from the payloads of rows
published before it; visibility from those columns answers exactly as the in-memory timeline over the payloads."""

from __future__ import annotations

import sqlalchemy as sa

from druidflow.intervals import Interval, format_instant, now_ms, parse_instant
from druidflow.metadata import migrate
from druidflow.metadata.segment_rows import payload_bytes, segment_row
from druidflow.metadata.store import MetadataStore
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.shardspec import (
    DimensionRangeShardSpec,
    HashBasedNumberedShardSpec,
    LinearShardSpec,
    NoneShardSpec,
    NumberedShardSpec,
    SingleDimensionShardSpec,
    TombstoneShardSpec,
)
from druidflow.segments.timeline import Timeline, core_partitions_column

DAY = 86_400_000
T0 = parse_instant("2024-01-01")


def _seg(day: int, version: str, spec, **kw) -> DataSegment:
    return DataSegment(
        data_source="wiki", interval=Interval(T0 + day * DAY, T0 + (day + 1) * DAY), version=version,
        shard_spec=spec, size=100 + day, num_rows=10 + spec.partition_num, **kw,
    )


def _segments() -> list[DataSegment]:
    v1, v2 = "2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"
    return [
        # day 0: numbered, complete in v1, overwritten by a complete v2
        _seg(0, v1, NumberedShardSpec(partition_num=0, partitions=2)),
        _seg(0, v1, NumberedShardSpec(partition_num=1, partitions=2)),
        _seg(0, v2, NumberedShardSpec(partition_num=0, partitions=1)),
        # day 1: hashed v1 complete; v2 missing a core partition, so v1 stays visible
        *[_seg(1, v1, HashBasedNumberedShardSpec(partition_num=p, partitions=2, bucket_id=p, num_buckets=2)) for p in (0, 1)],
        _seg(1, v2, HashBasedNumberedShardSpec(partition_num=0, partitions=3, bucket_id=0, num_buckets=3)),
        # day 2: linear (no core set) and an appended numbered partition
        _seg(2, v1, LinearShardSpec(partition_num=0)),
        _seg(2, v1, LinearShardSpec(partition_num=3)),
        # day 3: none; day 4: tombstone over an older numbered set
        _seg(3, v1, NoneShardSpec()),
        _seg(4, v1, NumberedShardSpec(partition_num=0, partitions=0)),
        _seg(4, v2, TombstoneShardSpec()),
        # day 5: single of unknown core size that chains (complete); day 6: one that does not (incomplete)
        _seg(5, v1, SingleDimensionShardSpec(partition_num=0, dimension="page", end="m")),
        _seg(5, v1, SingleDimensionShardSpec(partition_num=1, dimension="page", start="m")),
        _seg(6, v1, SingleDimensionShardSpec(partition_num=0, dimension="page", end="m")),
        # day 7: range with a known core size
        *[_seg(7, v1, DimensionRangeShardSpec(partition_num=p, dimensions=["page"], num_core_partitions=2,
                                            start=None if p == 0 else ["m"], end=["m"] if p == 0 else None))
          for p in (0, 1)],
    ]


def _insert_before_df_narrow(url: str, segments: list[DataSegment]) -> None:
    """Rows exactly as a publish at df_push wrote them (the table as it was then, reflected)."""
    engine = sa.create_engine(url)
    now = format_instant(now_ms())
    with engine.begin() as conn:
        table = sa.Table("druidflow_segments", sa.MetaData(), autoload_with=conn)
        assert "shard_type" not in table.c
        rows = []
        for s in segments:
            row = segment_row(s, payload_bytes(s), used=True, now=now)
            rows.append({k: v for k, v in row.items() if k in table.c})
        conn.execute(table.insert(), rows)
    engine.dispose()


def test_upgrade_from_df_push_backfills_the_narrow_columns_and_loses_nothing(db_url):
    segments = _segments()
    migrate.upgrade(db_url, "df_push")
    _insert_before_df_narrow(db_url, segments)
    with sa.create_engine(db_url).connect() as conn:
        before = dict(conn.execute(sa.text("SELECT id, payload FROM druidflow_segments")).all())

    migrate.upgrade(db_url)
    assert migrate.is_at_head(db_url)
    store = MetadataStore(db_url)
    with store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.text("SELECT id, payload, shard_type, core_partitions FROM druidflow_segments"))}
    assert {k: bytes(v) for k, v in before.items()} == {k: bytes(r.payload) for k, r in rows.items()}
    for s in segments:
        core = core_partitions_column(s.shard_spec)
        assert (rows[s.id].shard_type, rows[s.id].core_partitions) == (s.shard_spec.type, None if core < 0 else core), s.id

    # Visibility from the columns equals the in-memory timeline over the payloads.
    reference = Timeline(segments)
    assert [s.id for s in store.visible_segments("wiki")] == [s.id for s in reference.visible_segments()]
    summary = store.visible_summary("wiki")
    expected = [
        (e.interval, e.version, len(e.segments), sum(s.num_rows for s in e.segments), sum(s.size for s in e.segments))
        for e in reference.visible()
    ]
    assert [(e.interval, e.version, e.segments, e.rows, e.size) for e in summary] == expected
    assert [(e.interval, e.version, [s.id for s in e.segments]) for e in store.timeline("wiki").visible()] == [
        (e.interval, e.version, [s.id for s in e.segments]) for e in reference.visible()
    ]
    window = Interval(T0 + DAY // 2, T0 + 5 * DAY)
    assert [s.id for s in store.visible_segments("wiki", window)] == [s.id for s in reference.visible_segments(window)]
    store.engine.dispose()


def test_publish_writes_the_narrow_columns_and_overshadowed_sets_are_marked_by_key(store):
    segments = _segments()
    # Two publishes: one batch would store its own overshadowed segments unused at once (Druid's rule).
    store.publish_segments([s for s in segments if s.version < "2024-03"])
    store.publish_segments([s for s in segments if s.version > "2024-03"])
    with store.engine.connect() as conn:
        got = {r.id: (r.shard_type, r.core_partitions)
               for r in conn.execute(sa.text("SELECT id, shard_type, core_partitions FROM druidflow_segments"))}
    assert got == {
        s.id: (s.shard_spec.type, None if core_partitions_column(s.shard_spec) < 0 else core_partitions_column(s.shard_spec))
        for s in segments
    }
    expected = {s.id for s in Timeline(segments).overshadowed()}
    assert expected  # day 0's v1 and day 4's numbered set
    assert store.mark_overshadowed_unused("wiki") == len(expected)
    assert {s.id for s in segments} - {s.id for s in store.used_segments("wiki")} == expected
