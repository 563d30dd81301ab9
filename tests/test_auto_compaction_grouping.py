"""The planner's one-pass grouping of visible segments and locks into candidate chunks, against the per-chunk
lookups it replaced (``Timeline.visible_segments(chunk)`` and a scan of every lock), on random timelines."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from druidflow.compaction.planner import candidate_intervals, chunk_segments, overlapping_locks
from druidflow.exceptions import TimelineConflictError
from druidflow.granularity import Granularity
from druidflow.intervals import MS_HOUR, Interval
from druidflow.segments.timeline import Timeline
from tests.segments.test_timeline_properties import segment_sets


def _scaled(segments):
    """The property suite's grid is in milliseconds; stretch it to hours so DAY alignment has something to merge."""
    return [s.model_copy(update={"interval": Interval(s.interval.start * MS_HOUR, s.interval.end * MS_HOUR)}) for s in segments]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segment_sets(), st.sampled_from([None, "DAY", "SIX_HOUR"]), st.lists(st.tuples(st.integers(0, 30), st.integers(1, 12)), max_size=6))
def test_one_pass_grouping_matches_per_chunk_lookup(segments, target, lock_spans):
    try:
        timeline = Timeline(_scaled(segments))
    except TimelineConflictError:
        return
    entries = [e for e in timeline.visible() if not e.is_tombstone]
    granularity = Granularity.parse(target) if target else None
    candidates = candidate_intervals(entries, granularity)

    grouped = chunk_segments(candidates, entries)
    for chunk, got in zip(candidates, grouped):
        assert sorted(s.id for s in got) == sorted(s.id for s in timeline.visible_segments(chunk))

    locks = [SimpleNamespace(interval=Interval(a * MS_HOUR, (a + n) * MS_HOUR), task_id=f"t{i}") for i, (a, n) in enumerate(lock_spans)]
    for chunk, got in zip(candidates, overlapping_locks(candidates, locks)):
        assert sorted(lk.task_id for lk in got) == sorted(lk.task_id for lk in locks if lk.interval.overlaps(chunk))
