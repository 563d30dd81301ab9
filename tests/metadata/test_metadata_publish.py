"""publish_segments: one transaction, idempotent, conflict-checked, Druid's used flag; and the reads."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from druidflow.exceptions import (
    RetryableError,
    SegmentConflictError,
    SpecError,
    TerminalError,
    TimelineConflictError,
)
from druidflow.intervals import Interval
from druidflow.metadata.tables import segments as S
from druidflow.segments.shardspec import NoneShardSpec
from tests.metadata.metadata_helpers import make_segment

V1, V2 = "2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"
DAY1, DAY2 = "2024-01-01/2024-01-02", "2024-01-02/2024-01-03"


def test_publish_stores_every_column(store):
    seg = make_segment(DAY1, V1, partition=1, partitions=2)
    result = store.publish_segments([seg])
    assert result.inserted == (seg.id,) and result.already_present == () and result.inserted_unused == ()
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(S).where(S.c.id == seg.id)).mappings().one()
    assert row["id"] == "wiki_2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z_2024-02-01T00:00:00.000Z_1"
    assert (row["dataSource"], row["version"], row["partition_num"]) == ("wiki", V1, 1)
    assert (row["start"], row["end"]) == ("2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z")
    assert (row["start_ms"], row["end_ms"]) == (seg.interval.start, seg.interval.end)
    assert row["partitioned"] is True and row["used"] is True
    assert (row["size"], row["num_rows"]) == (1001, 10)
    assert row["load_path"] == seg.load_spec["path"]
    assert row["created_date"] == row["used_status_last_updated"] and row["created_date"].endswith("Z")
    assert row["unused_reason"] is None and row["kill_task_id"] is None
    payload = json.loads(bytes(row["payload"]))
    assert payload == seg.payload()
    assert payload["dimensions"] == "page,user" and payload["identifier"] == seg.id
    assert payload["shardSpec"] == {"type": "numbered", "partitionNum": 1, "partitions": 2}


def test_none_shard_spec_is_not_partitioned(store):
    seg = make_segment(DAY1, V1, shard=NoneShardSpec())
    store.publish_segments([seg])
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(S.c.partitioned)).scalar() is False


def test_republishing_is_a_noop_reported_as_already_present(store):
    segs = [make_segment(DAY1, V1, p, 2) for p in range(2)]
    first = store.publish_segments(segs)
    again = store.publish_segments(segs)
    assert again.inserted == () and set(again.already_present) == set(first.inserted)
    assert len(store.used_segments("wiki")) == 2
    # Partly new: the new one is inserted, the old one reported.
    third = make_segment(DAY2, V1)
    mixed = store.publish_segments([segs[0], third])
    assert mixed.inserted == (third.id,) and mixed.already_present == (segs[0].id,)


def test_same_id_with_a_different_payload_conflicts_terminally_and_writes_nothing(store):
    seg = make_segment(DAY1, V1)
    store.publish_segments([seg])
    changed = seg.model_copy(update={"size": 999999})
    fresh = make_segment(DAY2, V1)
    with pytest.raises(SegmentConflictError, match=seg.id) as caught:
        store.publish_segments([fresh, changed])
    # Deterministic: the stored row will never change, so a retry cannot help (unlike a lost insert race).
    assert isinstance(caught.value, TerminalError) and not isinstance(caught.value, RetryableError)
    assert [s.id for s in store.used_segments("wiki")] == [seg.id]  # all or nothing: `fresh` is not there


def test_a_failing_batch_leaves_nothing_behind(store):
    good = make_segment(DAY2, V1)
    bad = [make_segment("2024-01-01/2024-01-03", V2), make_segment(DAY1, V2)]  # same version, overlapping
    with pytest.raises(TimelineConflictError):
        store.publish_segments([good, *bad])
    assert store.used_segments("wiki") == []


def test_same_version_overlap_with_stored_segments_is_refused(store):
    store.publish_segments([make_segment("2024-01-01/2024-01-03", V1)])
    with pytest.raises(TimelineConflictError, match="same version"):
        store.publish_segments([make_segment(DAY1, V1, partition=1)])
    # Another version on the same interval is an ordinary overwrite.
    store.publish_segments([make_segment(DAY1, V2)])


def test_segments_overshadowed_within_the_batch_are_inserted_unused(store):
    old, new = make_segment(DAY1, V1), make_segment(DAY1, V2)
    result = store.publish_segments([old, new])
    assert set(result.inserted) == {old.id, new.id} and result.inserted_unused == (old.id,)
    rec = store.get_segment(old.id)
    assert rec.used is False and rec.unused_reason == "overshadowed"
    assert store.get_segment(new.id).used is True


def test_overshadowing_stored_segments_leaves_them_used_until_marked(store):
    old, new = make_segment(DAY1, V1), make_segment(DAY1, V2)
    store.publish_segments([old])
    store.publish_segments([new])
    assert {s.id for s in store.used_segments("wiki")} == {old.id, new.id}
    assert [s.id for s in store.visible_segments("wiki", Interval.parse(DAY1))] == [new.id]


def test_one_datasource_per_publish(store):
    with pytest.raises(SpecError, match="one dataSource"):
        store.publish_segments([make_segment(DAY1, V1), make_segment(DAY1, V1, ds="other")])


def test_publish_inside_a_callers_transaction_commits_with_it(store):
    seg = make_segment(DAY1, V1)
    with pytest.raises(RuntimeError):
        with store.engine.begin() as conn:
            store.publish_segments([seg], conn=conn)
            assert store.get_segment(seg.id, conn=conn) is not None
            raise RuntimeError("the critical section failed after the insert")
    assert store.get_segment(seg.id) is None
    with store.engine.begin() as conn:
        store.publish_segments([seg], conn=conn)
    assert store.get_segment(seg.id) is not None


def test_reads_by_interval_overlap_containment_and_used_flag(store):
    month = make_segment("2024-01-01/2024-02-01", V1)
    day2 = make_segment(DAY2, V2)
    other = make_segment(DAY1, V1, ds="other")
    store.publish_segments([month, day2])
    store.publish_segments([other])
    q = Interval.parse("2024-01-02T12:00/2024-01-04")
    assert [r.id for r in store.segments("wiki", q)] == [month.id, day2.id]
    assert [r.id for r in store.segments("wiki", q, contained=True)] == []
    assert [r.id for r in store.segments("wiki", Interval.parse("2024-01-02/2024-01-04"), contained=True)] == [day2.id]
    # Half-open: a segment ending where the query starts does not overlap it.
    assert store.segments("wiki", Interval.parse("2024-02-01/2024-03-01")) == []
    store.mark_unused("wiki", segment_ids=[day2.id], reason="dropped-by-user")
    assert [r.id for r in store.segments("wiki")] == [month.id]
    records = store.segments("wiki", include_unused=True)
    assert [(r.id, r.used) for r in records] == [(month.id, True), (day2.id, False)]
    assert records[1].unused_reason == "dropped-by-user" and records[1].segment == day2
    assert store.datasources() == ["other", "wiki"]
    assert store.get_segment("nope") is None
    assert store.get_segment(month.id).segment == month


def test_visible_segments_apply_partial_overshadow(store):
    month = make_segment("2024-01-01/2024-02-01", V1)
    day2 = make_segment(DAY2, V2)
    store.publish_segments([month])
    store.publish_segments([day2])
    assert [s.id for s in store.visible_segments("wiki", Interval.parse(DAY2))] == [day2.id]
    assert [s.id for s in store.visible_segments("wiki", Interval.parse("2024-01-01/2024-01-03"))] == [month.id, day2.id]


def test_text_with_copy_specials_and_non_ascii_round_trips(store):
    """On PostgreSQL the rows go in through COPY's text format, built column by column: tabs, newlines, carriage
    returns and backslashes in text columns are escaped, a non-ASCII name takes the dict path of the payload, and
    every column reads back as given (on SQLite the same publish is an executemany)."""
    odd = "wiki\u00e9\tx\\y\nz\r"
    segs = [
        make_segment(DAY1, V1, p, 3, ds=odd, last_compaction_state={"note": "a\tb\\c\nd", "ratio": 1.5e20})
        for p in range(2)
    ] + [make_segment(DAY1, V1, 2, 3, ds=odd)]
    result = store.publish_segments(segs)
    assert len(result.inserted) == 3
    with store.engine.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(sa.select(S).where(S.c.dataSource == odd)).mappings()}
    assert set(rows) == {s.id for s in segs}
    for seg in segs:
        row = rows[seg.id]
        assert row["dataSource"] == odd and row["load_path"] == seg.load_spec["path"]
        assert json.loads(bytes(row["payload"])) == seg.payload()
        assert (row["shard_type"], row["core_partitions"], row["partition_num"]) == ("numbered", 3, seg.partition_num)
    assert store.publish_segments(segs).already_present == result.inserted  # the stored bytes compare equal
    assert [s.id for s in store.visible_segments(odd)] == [s.id for s in segs]
