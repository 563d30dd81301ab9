"""allocate_segment: Druid's append allocation (§1.9 step C) on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from druidflow.exceptions import SegmentAllocationError
from druidflow.intervals import Interval
from druidflow.metadata.allocation import sequence_key
from druidflow.segments.shardspec import NoneShardSpec
from tests.metadata.metadata_helpers import make_segment

LOCK, NEWER = "2024-05-01T00:00:00.000Z", "2024-06-01T00:00:00.000Z"
EXISTING = "2024-02-01T00:00:00.000Z"
DAY = Interval.parse("2024-01-01/2024-01-02")


def alloc(store, seq="seq-A", interval=DAY, **kw):
    kw.setdefault("lock_version", LOCK)
    kw.setdefault("task_allocator_id", "task-1")
    return store.allocate_segment("wiki", interval, sequence_name=seq, **kw)


def test_empty_chunk_gets_partition_zero_with_no_core_set_in_the_lock_version(store):
    a = alloc(store)
    assert (a.interval, a.version, a.partition_num, a.core_partitions) == (DAY, LOCK, 0, 0)
    assert a.shard_spec.type == "numbered"
    assert a.id == f"wiki_2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z_{LOCK}"


def test_existing_chunk_is_extended_in_its_version_with_committed_core_partitions(store):
    store.publish_segments([make_segment(str(DAY), EXISTING, p, 3) for p in range(3)])
    a = alloc(store, "seq-A")
    b = alloc(store, "seq-B")
    assert (a.version, a.partition_num, a.core_partitions) == (EXISTING, 3, 3)
    assert (b.version, b.partition_num, b.core_partitions) == (EXISTING, 4, 3)  # pending partitions count too


def test_allocation_is_idempotent_per_request(store):
    first = alloc(store, "seq-A")
    assert alloc(store, "seq-A") == first
    assert len(store.pending_segments("wiki")) == 1
    # With lineage: keyed by the previous segment id instead of the interval.
    nxt = alloc(store, "seq-L", previous_segment_id=first.id, skip_lineage_check=False)
    assert alloc(store, "seq-L", previous_segment_id=first.id, skip_lineage_check=False) == nxt
    assert nxt.partition_num == 1


def test_lineage_request_for_another_interval_fails(store):
    alloc(store, "seq-L", previous_segment_id="p", skip_lineage_check=False)
    with pytest.raises(SegmentAllocationError, match="not the requested"):
        alloc(store, "seq-L", interval=Interval.parse("2024-01-02/2024-01-03"), previous_segment_id="p", skip_lineage_check=False)


def test_chunk_covered_by_more_than_one_timeline_entry_fails(store):
    store.publish_segments([make_segment("2024-01-01T00:00/2024-01-01T12:00", EXISTING)])
    store.publish_segments([make_segment("2024-01-01T12:00/2024-01-02T00:00", EXISTING)])
    with pytest.raises(SegmentAllocationError, match="2 time chunks"):
        alloc(store)


def test_existing_segment_with_a_different_interval_fails(store):
    store.publish_segments([make_segment("2024-01-01/2024-02-01", EXISTING)])  # a month-long chunk
    with pytest.raises(SegmentAllocationError, match="different interval"):
        alloc(store)
    # A pending segment of another granularity is in the way as well.
    hour = Interval.parse("2024-03-01T00:00/2024-03-01T01:00")
    alloc(store, "seq-H", interval=hour)
    with pytest.raises(SegmentAllocationError, match="different interval"):
        alloc(store, "seq-D", interval=Interval.parse("2024-03-01/2024-03-02"))


def test_non_extendable_chunk_fails(store):
    store.publish_segments([make_segment(str(DAY), EXISTING, shard=NoneShardSpec())])
    with pytest.raises(SegmentAllocationError, match="cannot be extended"):
        alloc(store)


def test_chunk_newer_than_the_lock_fails(store):
    store.publish_segments([make_segment(str(DAY), NEWER)])
    with pytest.raises(SegmentAllocationError, match="newer than the task's lock"):
        alloc(store)
    # APPEND locks (version = epoch) append to whatever version the chunk has.
    a = alloc(store, lock_version="1970-01-01T00:00:00.000Z")
    assert (a.version, a.partition_num) == (NEWER, 1)


def test_ids_of_unused_segments_are_never_handed_out_again(store):
    segs = [make_segment(str(DAY), EXISTING, p, 0) for p in range(3)]
    store.publish_segments(segs)
    store.mark_unused("wiki", segment_ids=[segs[2].id], reason="dropped-by-user")
    a = alloc(store)
    assert a.partition_num == 3  # not 2: wiki_..._2 is still in the segments table


def test_overwritten_chunk_gets_a_fresh_pending_row(store):
    first = alloc(store, "seq-A")  # pending in LOCK
    store.publish_segments([make_segment(str(DAY), NEWER)])
    again = alloc(store, "seq-A", lock_version="2024-07-01T00:00:00.000Z")
    assert again != first and (again.version, again.partition_num) == (NEWER, 1)


def test_delete_pending_segments_of_a_task(store):
    alloc(store, "seq-A", task_allocator_id="t1")
    alloc(store, "seq-B", task_allocator_id="t2")
    assert store.delete_pending_segments("wiki", "t1") == 1
    assert [p.partition_num for p in store.pending_segments("wiki")] == [1]


def test_sequence_key_is_druids_sha1_shape():
    key = sequence_key("seq", "", DAY, LOCK, skip_lineage_check=True)
    assert len(key) == 40 and key == key.upper()
    assert key != sequence_key("seq", "", DAY, NEWER, skip_lineage_check=True)
    assert sequence_key("seq", "prev", DAY, LOCK, False) != sequence_key("seq", "prev2", DAY, LOCK, False)
