"""The timeline on hand-picked cases: each test names one of Druid's visibility rules."""

from __future__ import annotations

import pytest

from druidflow.exceptions import TimelineConflictError
from druidflow.intervals import Interval
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.shardspec import (
    LinearShardSpec,
    NoneShardSpec,
    NumberedShardSpec,
    SingleDimensionShardSpec,
    TombstoneShardSpec,
)
from druidflow.segments.timeline import Timeline

DAY1 = Interval.parse("2024-01-01/2024-01-02")
DAY2 = Interval.parse("2024-01-02/2024-01-03")
TWO_DAYS = Interval.parse("2024-01-01/2024-01-03")


def seg(interval, version, partition=0, partitions=0, shard=None, ds="wiki"):
    spec = shard or NumberedShardSpec(partition_num=partition, partitions=partitions)
    return DataSegment(data_source=ds, interval=interval, version=version, shard_spec=spec)


def spans(entries):
    return [(str(e.interval), e.version, [s.partition_num for s in e.segments]) for e in entries]


def test_highest_complete_version_wins():
    old, new = seg(DAY1, "2024-02-01T00:00:00.000Z"), seg(DAY1, "2024-03-01T00:00:00.000Z")
    tl = Timeline([old, new])
    assert tl.visible_segments() == [new]
    assert tl.overshadowed() == [old]


def test_versions_compare_as_strings_not_dates_or_numbers():
    # "v10" < "v9" as strings; "<v>_v9" (convert task) is greater than "<v>".
    tl = Timeline([seg(DAY1, "v10"), seg(DAY1, "v9")])
    assert [s.version for s in tl.visible_segments()] == ["v9"]
    base = "2024-01-05T00:00:00.000Z"
    tl = Timeline([seg(DAY1, base), seg(DAY1, base + "_v9")])
    assert [s.version for s in tl.visible_segments()] == [base + "_v9"]


def test_incomplete_newer_version_leaves_older_visible_until_core_set_is_complete():
    old = seg(DAY1, "v1")
    new0 = seg(DAY1, "v2", 0, 3)
    new2 = seg(DAY1, "v2", 2, 3)
    assert Timeline([old, new0, new2]).visible_segments() == [old]
    assert not Timeline([old, new0, new2]).is_overshadowed(old)
    new1 = seg(DAY1, "v2", 1, 3)
    tl = Timeline([old, new0, new1, new2])
    assert tl.visible_segments() == [new0, new1, new2]
    assert tl.overshadowed() == [old]


def test_extra_partitions_beyond_the_core_set_are_visible_with_it():
    core = [seg(DAY1, "v1", p, 2) for p in range(2)]
    appended = seg(DAY1, "v1", 5, 2)
    assert Timeline([*core, appended]).visible_segments() == [*core, appended]
    # ...but they cannot complete a set on their own.
    assert Timeline([core[0], appended]).visible_segments() == []


def test_zero_core_partitions_means_any_nonempty_set_is_complete():
    only_third = seg(DAY1, "v1", 3, 0)
    assert Timeline([only_third]).visible_segments() == [only_third]
    linear = seg(DAY1, "v1", shard=LinearShardSpec(partition_num=7))
    assert Timeline([linear]).visible_segments() == [linear]


def test_partial_overshadow_keeps_the_lower_version_where_uncovered():
    month = seg(Interval.parse("2024-01-01/2024-02-01"), "v1")
    day = seg(DAY2, "v2")
    tl = Timeline([month, day])
    assert spans(tl.visible()) == [
        ("2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z", "v1", [0]),
        ("2024-01-02T00:00:00.000Z/2024-01-03T00:00:00.000Z", "v2", [0]),
        ("2024-01-03T00:00:00.000Z/2024-02-01T00:00:00.000Z", "v1", [0]),
    ]
    assert tl.overshadowed() == []  # partly overshadowed is not overshadowed
    assert tl.visible()[0].true_interval == month.interval


def test_covered_without_gaps_by_several_higher_entries_is_overshadowed():
    two_days = seg(TWO_DAYS, "v1")
    tl = Timeline([two_days, seg(DAY1, "v2"), seg(DAY2, "v3")])
    assert tl.overshadowed() == [two_days]
    tl = Timeline([two_days, seg(DAY1, "v2")])
    assert tl.overshadowed() == []


def test_visible_trims_entries_to_the_query():
    tl = Timeline([seg(TWO_DAYS, "v1")])
    q = Interval.parse("2024-01-01T12:00/2024-01-02T06:00")
    [entry] = tl.visible(q)
    assert entry.interval == q and entry.true_interval == TWO_DAYS
    assert tl.visible(Interval.parse("2024-01-05/2024-01-06")) == []
    assert tl.visible_segments(Interval.parse("2024-01-05/2024-01-06")) == []


def test_switch_is_atomic_per_chunk():
    old = [seg(DAY1, "v1"), seg(DAY2, "v1")]
    new_day1 = [seg(DAY1, "v2", p, 2) for p in range(2)]
    new_day2_incomplete = [seg(DAY2, "v2", 0, 2)]
    tl = Timeline([*old, *new_day1, *new_day2_incomplete])
    assert [(str(e.interval), e.version) for e in tl.visible()] == [
        (str(DAY1), "v2"),
        (str(DAY2), "v1"),
    ]


def test_same_version_overlapping_unequal_intervals_is_an_error():
    with pytest.raises(TimelineConflictError, match="same version"):
        Timeline([seg(TWO_DAYS, "v1"), seg(DAY2, "v1")])
    # Abutting intervals of one version are fine.
    assert len(Timeline([seg(DAY1, "v1"), seg(DAY2, "v1")]).visible()) == 2


def test_tombstones_overshadow_but_contribute_no_segments():
    data = seg(DAY1, "v1")
    tomb = seg(DAY1, "v2", shard=TombstoneShardSpec())
    tl = Timeline([data, tomb])
    assert tl.visible_segments() == []
    assert tl.visible_segments(include_tombstones=True) == [tomb]
    [entry] = tl.visible()
    assert entry.is_tombstone
    assert tl.overshadowed() == [data]


def test_none_shard_spec_is_a_complete_single_segment():
    s = seg(DAY1, "v1", shard=NoneShardSpec())
    assert Timeline([s]).visible_segments() == [s]


def test_single_dim_with_unknown_core_size_must_chain_from_open_to_open():
    a = seg(DAY1, "v2", shard=SingleDimensionShardSpec(dimension="d", start=None, end="m", partition_num=0))
    b = seg(DAY1, "v2", shard=SingleDimensionShardSpec(dimension="d", start="m", end=None, partition_num=1))
    old = seg(DAY1, "v1")
    assert Timeline([old, a]).visible_segments() == [old]
    assert Timeline([old, a, b]).visible_segments() == [a, b]


def test_duplicates_are_kept_once_and_one_datasource_only():
    s = seg(DAY1, "v1")
    assert Timeline([s, s]).visible_segments() == [s]
    with pytest.raises(ValueError, match="one dataSource"):
        Timeline([s, seg(DAY1, "v1", ds="other")])


def test_lookup_with_incomplete_shows_incomplete_newer_sets():
    old, new0 = seg(DAY1, "v1"), seg(DAY1, "v2", 0, 2)
    tl = Timeline([old, new0])
    assert [e.version for e in tl.visible()] == ["v1"]
    assert [e.version for e in tl.lookup_with_incomplete()] == ["v2"]


def test_is_overshadowed_works_for_segments_outside_the_timeline():
    tl = Timeline([seg(TWO_DAYS, "v5")])
    assert tl.is_overshadowed(seg(DAY1, "v1"))
    assert not tl.is_overshadowed(seg(DAY1, "v5"))  # equal version: not overshadowed
    assert not tl.is_overshadowed(seg(Interval.parse("2024-01-02/2024-01-04"), "v1"))  # sticks out


def test_empty_timeline():
    tl = Timeline([])
    assert tl.visible() == [] and tl.visible_segments() == [] and tl.overshadowed() == []
    assert not tl.is_overshadowed(seg(DAY1, "v1"))
