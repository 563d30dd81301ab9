"""mark_unused / mark_used / mark_overshadowed_unused: what changes, when, why, and what is refused."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from druidflow.exceptions import SegmentBeingKilledError, SpecError
from druidflow.intervals import Interval
from druidflow.metadata.tables import segments as S
from tests.metadata.metadata_helpers import make_segment

V1, V2, V3, V4 = (f"2024-0{m}-01T00:00:00.000Z" for m in (2, 3, 4, 5))
DAY1, DAY2, DAY3 = "2024-01-01/2024-01-02", "2024-01-02/2024-01-03", "2024-01-03/2024-01-04"


def _state(store, seg):
    rec = store.get_segment(seg.id)
    return rec.used, rec.unused_reason


def test_mark_unused_by_interval_takes_only_fully_contained_segments(store):
    inside, straddling = make_segment(DAY2, V1), make_segment("2024-01-02/2024-01-04", V2)
    store.publish_segments([inside])
    store.publish_segments([straddling])
    assert store.mark_unused("wiki", interval=Interval.parse("2024-01-01/2024-01-03"), reason="dropped-by-user") == 1
    assert _state(store, inside) == (False, "dropped-by-user")
    assert _state(store, straddling) == (True, None)


def test_mark_unused_by_ids_and_whole_datasource(store):
    segs = [make_segment(d, V1) for d in (DAY1, DAY2, DAY3)]
    other = make_segment(DAY1, V1, ds="other")
    store.publish_segments(segs)
    store.publish_segments([other])
    assert store.mark_unused("wiki", segment_ids=[segs[0].id, other.id], reason="dropped-by-user") == 1  # other ds untouched
    assert store.mark_unused("wiki", segment_ids=[segs[0].id], reason="dropped-by-user") == 0  # already unused
    assert store.mark_unused("wiki", reason="dropped-by-rule") == 2
    assert [_state(store, s) for s in segs] == [(False, "dropped-by-user"), (False, "dropped-by-rule"), (False, "dropped-by-rule")]
    assert _state(store, other) == (True, None)


def test_every_change_stamps_used_status_last_updated(store):
    seg = make_segment(DAY1, V1)
    store.publish_segments([seg])
    published = store.get_segment(seg.id).used_status_last_updated
    time.sleep(0.005)
    store.mark_unused("wiki", segment_ids=[seg.id], reason="dropped-by-user")
    dropped = store.get_segment(seg.id).used_status_last_updated
    time.sleep(0.005)
    store.mark_used("wiki", segment_ids=[seg.id])
    revived = store.get_segment(seg.id)
    assert published < dropped < revived.used_status_last_updated
    assert revived.used and revived.unused_reason is None


def test_mark_used_brings_back_only_segments_that_would_be_visible(store):
    old, new = make_segment(DAY1, V1), make_segment(DAY1, V2)
    store.publish_segments([old])
    store.publish_segments([new])
    store.mark_unused("wiki", reason="dropped-by-user")
    # Both unused: bringing back the day brings back the newer version only (the older one is overshadowed by it).
    assert store.mark_used("wiki", interval=Interval.parse(DAY1)) == 1
    assert _state(store, new) == (True, None) and _state(store, old)[0] is False
    # Explicitly asking for the overshadowed one changes nothing either.
    assert store.mark_used("wiki", segment_ids=[old.id]) == 0


def test_mark_used_refuses_segments_claimed_by_a_kill(store):
    claimed, free = make_segment(DAY1, V1), make_segment(DAY2, V1)
    store.publish_segments([claimed, free])
    store.mark_unused("wiki", reason="dropped-by-user")
    with store.engine.begin() as conn:
        conn.execute(sa.update(S).where(S.c.id == claimed.id).values(kill_task_id="kill_wiki_1"))
    with pytest.raises(SegmentBeingKilledError, match=claimed.id):
        store.mark_used("wiki")
    assert _state(store, free)[0] is False  # nothing changed
    assert store.mark_used("wiki", segment_ids=[free.id]) == 1


def test_interval_and_ids_together_and_bad_reasons_are_refused(store):
    with pytest.raises(SpecError, match="not both"):
        store.mark_unused("wiki", interval=Interval.parse(DAY1), segment_ids=["x"], reason="dropped-by-user")
    with pytest.raises(SpecError, match="reason"):
        store.mark_unused("wiki", reason="")


def test_mark_overshadowed_unused_follows_the_timeline(store):
    month = make_segment("2024-01-01/2024-02-01", V1)
    day1_old, day1_new = make_segment(DAY1, V2), make_segment(DAY1, V3)
    incomplete = make_segment(DAY2, V4, partition=0, partitions=2)  # core set not complete: overshadows nothing
    store.publish_segments([month])
    store.publish_segments([day1_old])
    store.publish_segments([day1_new, incomplete])
    assert store.mark_overshadowed_unused("wiki", reason="overshadowed-by-reindex") == 1
    assert _state(store, day1_old) == (False, "overshadowed-by-reindex")
    assert _state(store, month) == (True, None)  # only partly overshadowed
    assert store.get_segment(incomplete.id).used
    assert store.mark_overshadowed_unused("wiki") == 0


def test_mark_overshadowed_unused_in_an_interval_sees_overshadowing_segments_outside_it(store):
    two_days = make_segment("2024-01-01/2024-01-03", V1)
    store.publish_segments([two_days])
    store.publish_segments([make_segment(DAY1, V2), make_segment(DAY2, V2)])
    assert store.mark_overshadowed_unused("wiki", Interval.parse("2024-01-02T06:00/2024-01-02T07:00")) == 1
    assert _state(store, two_days)[0] is False
