"""The timeline against a brute-force model that paints every millisecond of a small grid."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from druidflow.exceptions import TimelineConflictError
from druidflow.intervals import Interval
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.shardspec import NumberedShardSpec, TombstoneShardSpec
from druidflow.segments.timeline import Timeline

GRID = 24
# String order differs from numeric order here ("v10" < "v2" < "v9"): the model must use string order too.
VERSIONS = ["v1", "v10", "v2", "v9", "v9_v9"]


def _overlap_same_version(a, b):
    return a[2] == b[2] and a[:2] != b[:2] and a[0] < b[1] and b[0] < a[1]


@st.composite
def intervals(draw):
    """Mostly chunks aligned to a granularity (as real segments are), sometimes arbitrary ranges."""
    if draw(st.booleans()):
        size = draw(st.sampled_from([2, 4, 8, 12]))
        k = draw(st.integers(0, GRID // size - 1))
        return k * size, (k + 1) * size
    start = draw(st.integers(0, GRID - 1))
    return start, draw(st.integers(start + 1, GRID))


@st.composite
def segment_sets(draw):
    """Partition sets drawn as whole sets (interval, version, core size, which partitions are present).

    One draw in ten may hold two sets of one version with overlapping, unequal intervals (a conflict the
    timeline must refuse); the others drop such sets so that most examples exercise visibility.
    """
    allow_conflict = draw(st.integers(0, 9)) == 0
    keys, segments = [], []
    for _ in range(draw(st.integers(0, 9))):
        start, end = draw(intervals())
        version = draw(st.sampled_from(VERSIONS))
        key = (start, end, version)
        if key in keys or (not allow_conflict and any(_overlap_same_version(key, k) for k in keys)):
            continue
        keys.append(key)
        if draw(st.integers(0, 9)) == 0:
            segments.append(DataSegment(data_source="ds", interval=Interval(start, end), version=version, shard_spec=TombstoneShardSpec()))
            continue
        core = draw(st.integers(0, 3))
        present = draw(st.sets(st.integers(0, 4), min_size=1, max_size=4))
        for p in sorted(present):
            spec = NumberedShardSpec(partition_num=p, partitions=core)
            segments.append(DataSegment(data_source="ds", interval=Interval(start, end), version=version, shard_spec=spec))
    return segments


class Model:
    """Druid's rules, stated as directly as possible: group, check completeness, paint every instant."""

    def __init__(self, segments):
        self.sets = {}
        for s in segments:
            self.sets.setdefault((s.interval.start, s.interval.end, s.version), {})[s.partition_num] = s
        keys = list(self.sets)
        self.conflict = any(_overlap_same_version(a, b) for a in keys for b in keys)
        self.complete = {k for k, parts in self.sets.items() if self._complete(parts)}
        self.top = {}
        for t in range(GRID):
            covering = [k for k in self.complete if k[0] <= t < k[1]]
            if covering:
                self.top[t] = max(covering, key=lambda k: k[2])

    @staticmethod
    def _complete(parts):
        core = max(s.shard_spec.core_partitions for s in parts.values())
        return core == 0 or all(p in parts for p in range(core))

    def visible(self, lo, hi):
        """(start, end, version) pieces, trimmed to [lo, hi)."""
        out = []
        for t in range(lo, hi):
            k = self.top.get(t)
            if k is None:
                continue
            if out and out[-1][1] == t and out[-1][3] == k:
                out[-1][1] = t + 1
            else:
                out.append([t, t + 1, k[2], k])
        return [(a, b, v) for a, b, v, _ in out]

    def visible_ids(self, lo, hi):
        keys = {self.top[t] for t in range(lo, hi) if t in self.top}
        return {s.id for k in keys for s in self.sets[k].values() if not s.is_tombstone}

    def overshadowed(self, segment):
        t0, t1 = segment.interval.start, segment.interval.end
        return all(t in self.top and self.top[t][2] > segment.version for t in range(t0, t1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segment_sets(), st.integers(0, GRID), st.integers(0, GRID))
def test_visible_matches_brute_force(segments, a, b):
    lo, hi = min(a, b), max(a, b)
    model = Model(segments)
    if model.conflict:
        with pytest.raises(TimelineConflictError):
            Timeline(segments)
        return
    tl = Timeline(segments)
    got = [(e.interval.start, e.interval.end, e.version) for e in tl.visible(Interval(lo, hi))]
    assert got == (model.visible(lo, hi) if hi > lo else [])
    assert {s.id for s in tl.visible_segments(Interval(lo, hi))} == (model.visible_ids(lo, hi) if hi > lo else set())
    for entry in tl.visible(Interval(lo, hi)):
        assert all(s.version == entry.version and s.interval == entry.true_interval for s in entry.segments)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segment_sets())
def test_overshadowed_matches_brute_force(segments):
    model = Model(segments)
    if model.conflict:
        return
    tl = Timeline(segments)
    expected = {s.id for s in segments if model.overshadowed(s)}
    assert {s.id for s in tl.overshadowed()} == expected
    assert {s.id for s in segments if tl.is_overshadowed(s)} == expected


@settings(max_examples=100, deadline=None)
@given(segment_sets(), st.integers(0, GRID - 1), st.integers(1, GRID), st.sampled_from(VERSIONS))
def test_is_overshadowed_for_foreign_segments(segments, start, length, version):
    model = Model(segments)
    if model.conflict:
        return
    probe = DataSegment(data_source="ds", interval=Interval(start, min(GRID, start + length)), version=version)
    assert Timeline(segments).is_overshadowed(probe) == model.overshadowed(probe)
