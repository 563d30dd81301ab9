"""The auto-compaction planner on prepared timelines (real SQLite/PostgreSQL metadata and lockbox), its config, and
a plan -> compact -> plan cycle with real segments showing a compacted chunk is not picked again."""

from __future__ import annotations

import json

import pytest

from druidflow.compaction.config import AutoCompactionSettings, load_settings
from druidflow.compaction.planner import plan_auto_compaction
from druidflow.compaction.state import compaction_state, needs_compaction, wanted_state
from druidflow.exceptions import SpecError
from druidflow.granularity import Granularity
from druidflow.intervals import Interval
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.shardspec import NumberedShardSpec
from druidflow.specs.dimensions import DimensionsSpec
from druidflow.specs.tasks import CompactTask, parse_task
from druidflow.specs.tuning import IndexTuningConfig
from druidflow.tasks import compact, index
from druidflow.tasks.compact import sha256_of_segment_ids
from druidflow.tasks.runtime import Runtime
from tests.index_specs import COUNT_AND_SUM_V, index_task, json_lines

V1 = "2024-02-01T00:00:00.000Z"
TARGET_ROWS = 1000


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def day(d: int) -> Interval:
    return Interval.parse(f"2024-01-{d:02d}/P1D")


def state(max_rows: int = TARGET_ROWS) -> dict:
    return compaction_state(
        tuning=IndexTuningConfig.parse({"partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": max_rows}}),
        segment_granularity=Granularity.parse("DAY"),
        query_granularity=Granularity.parse("HOUR"),
        rollup=True,
        dimensions_spec=DimensionsSpec(dimensions=["d"]),
        metrics_spec=[],
        transform_spec=None,
    )


def segments(d: int, n: int, *, rows: int = 10, size: int = 1000, last_state=None, ds: str = "wiki") -> list[DataSegment]:
    return [
        DataSegment(data_source=ds, interval=day(d), version=V1, shard_spec=NumberedShardSpec(partition_num=i, partitions=n),
                    size=size, num_rows=rows, last_compaction_state=last_state, load_spec={"type": "local", "path": f"/x/{d}/{i}"})
        for i in range(n)
    ]


def settings(**extra) -> AutoCompactionSettings:
    cfg = {"dataSource": "wiki", "skipOffsetFromLatest": "P1D", "inputSegmentSizeBytes": 50_000,
           "tuningConfig": {"partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": TARGET_ROWS}}}
    return load_settings({"compactionConfigs": [{**cfg, **extra.pop("config", {})}], "maxCompactionTaskSlots": 3, **extra})


def hold(rt: Runtime, task_id: str, kind: str, interval: Interval, priority: int) -> None:
    rt.store.insert_task(task_id, kind, "wiki", task_id, {"type": kind})
    assert rt.lockbox.try_lock(task_id, datasource="wiki", interval=interval, priority=priority).acquired


@pytest.fixture
def prepared(rt) -> Runtime:
    """Ten days of 'wiki', each in the state its verdict below is about."""
    store = rt.store
    store.publish_segments(segments(10, 2))  # newest day: too recent (skipOffsetFromLatest P1D from its end)
    store.publish_segments(segments(9, 3))  # locked by an ingestion
    store.publish_segments(segments(8, 2, size=40_000))  # 80,000 bytes > inputSegmentSizeBytes 50,000
    store.publish_segments(segments(7, 1, rows=5000, last_state=state()))  # already compacted
    store.publish_segments(segments(6, 4))  # fragmented: 4 small segments
    store.publish_segments(segments(5, 1, rows=5000, last_state=state(max_rows=999)))  # compacted differently
    store.publish_segments(segments(4, 1, rows=5000))  # never compacted
    store.publish_segments(segments(3, 3))  # a compaction of an earlier run is still running on it
    store.publish_segments(segments(2, 3))  # fragmented, but no slot left
    hold(rt, "index_wiki_running", "index", day(9), 50)
    hold(rt, "auto_compact_wiki_earlier", "compact", day(3), 25)
    return rt


def by_day(plan) -> dict[int, object]:
    return {int(str(v.interval)[8:10]): v for v in plan.verdicts}


def test_verdicts_and_reasons_on_a_prepared_timeline(prepared):
    rt = prepared
    plan = plan_auto_compaction(settings(), rt.store, rt.lockbox)
    v = by_day(plan)
    assert {d: x.category for d, x in v.items()} == {
        10: "too_recent", 9: "locked", 8: "too_big", 7: "already_compacted", 6: "compact", 5: "compact",
        4: "no_slot", 3: "locked", 2: "no_slot",
    }
    assert "skipOffsetFromLatest is P1D" in v[10].reason and "2024-01-11T00:00:00.000Z" in v[10].reason  # from the newest end, not now
    assert "locked by index index_wiki_running" in v[9].reason and "priority 50" in v[9].reason
    assert "80,000 bytes" in v[8].reason and "inputSegmentSizeBytes 50,000" in v[8].reason
    assert v[6].reason == "fragmented: 4 of 4 segments hold fewer than the target 1,000 rows"
    assert v[5].reason.startswith("compaction state differs: partitionsSpec.maxRowsPerSegment is 999, the config wants 1000")
    assert "never compacted" in v[4].reason and "slots are taken" in v[4].reason
    assert "being compacted by auto_compact_wiki_earlier" in v[3].reason
    assert v[10].verdict == "skipped: too recent" and v[6].verdict == "compact"
    assert v[6].line().startswith("wiki 2024-01-06/2024-01-07: compact (fragmented")
    # 3 slots, 1 compaction still running: the two newest eligible chunks get one each
    assert plan.running == ["auto_compact_wiki_earlier"] and plan.slots == 2
    assert [t["ioConfig"]["inputSpec"]["interval"] for t in plan.tasks] == [str(day(6)), str(day(5))]
    assert plan.counts() == {"too_recent": 1, "locked": 2, "too_big": 1, "already_compacted": 1, "compact": 2, "no_slot": 2}


def test_the_planned_tasks_are_valid_compact_tasks_pinned_to_the_chunk(prepared):
    rt = prepared
    plan = plan_auto_compaction(settings(config={"taskPriority": 30, "taskContext": {"taskLockTimeout": 1000},
                                                 "granularitySpec": {"segmentGranularity": "DAY"}}), rt.store, rt.lockbox)
    first = plan.tasks[0]
    task = parse_task(first)
    assert isinstance(task, CompactTask)
    assert task.task_id.startswith("auto_compact_wiki_") and task.task_id == by_day(plan)[6].task_id
    assert task.priority == 30 and task.context_flag("storeCompactionState") and task.lock_timeout_ms == 1000
    assert task.sha256_of_sorted_segment_ids == sha256_of_segment_ids([s.id for s in segments(6, 4)])
    assert task.granularity_spec.segment_granularity == Granularity.parse("DAY")
    assert task.tuning_config.effective_partitions_spec.max_rows_per_segment == TARGET_ROWS


def test_most_fragmented_first_policy_and_a_zero_slot_budget(prepared):
    rt = prepared
    plan = plan_auto_compaction(settings(compactionPolicy={"type": "mostFragmentedFirst"}), rt.store, rt.lockbox)
    # day 6 has 4 small segments, day 2 has 3: they win over the newer but unfragmented days 5 and 4
    assert [t["ioConfig"]["inputSpec"]["interval"] for t in plan.tasks] == [str(day(6)), str(day(2))]
    none = plan_auto_compaction(settings(maxCompactionTaskSlots=1), rt.store, rt.lockbox)
    assert none.tasks == [] and none.slots == 0
    assert {v.category for v in none.verdicts} >= {"no_slot"}


def test_a_skip_offset_of_zero_and_no_size_limit(prepared):
    rt = prepared
    plan = plan_auto_compaction(
        settings(config={"skipOffsetFromLatest": "PT0S", "inputSegmentSizeBytes": 10**12}, maxCompactionTaskSlots=20),
        rt.store, rt.lockbox,
    )
    v = by_day(plan)
    assert v[10].category == "compact" and v[8].category == "compact"


def test_hourly_segments_gather_into_their_target_day(rt):
    for d in (1, 2, 3):
        hours = [
            DataSegment(data_source="wiki", interval=Interval.parse(f"2024-01-{d:02d}T{h:02d}:00/PT1H"), version=V1, size=10, num_rows=1)
            for h in range(24)
        ]
        rt.store.publish_segments(hours)
    plan = plan_auto_compaction(settings(config={"granularitySpec": {"segmentGranularity": "DAY"}}), rt.store, rt.lockbox)
    assert [(str(v.interval), v.category, v.segments) for v in plan.verdicts] == [
        (str(day(3)), "too_recent", 24), (str(day(2)), "compact", 24), (str(day(1)), "compact", 24),
    ]


def test_unconfigured_and_empty_data_sources(rt):
    rt.store.publish_segments(segments(1, 2, ds="other"))
    plan = plan_auto_compaction(load_settings([{"dataSource": "wiki"}]), rt.store, rt.lockbox)
    assert plan.verdicts == [] and plan.tasks == []
    assert plan.notes == ["wiki: no used segments; nothing to compact"]


def test_config_format_errors_name_the_field(tmp_path):
    with pytest.raises(SpecError, match=r"compactionConfigs\[0\].skipOfsetFromLatest"):
        load_settings({"compactionConfigs": [{"dataSource": "w", "skipOfsetFromLatest": "P1D"}]})
    with pytest.raises(SpecError, match="not an ISO-8601 period"):
        load_settings([{"dataSource": "w", "skipOffsetFromLatest": "1 day"}])
    with pytest.raises(SpecError, match="configured twice"):
        load_settings([{"dataSource": "w"}, {"dataSource": "w"}])
    with pytest.raises(SpecError, match="not both"):
        load_settings([{"dataSource": "w", "maxRowsPerSegment": 5, "tuningConfig": {"partitionsSpec": {"type": "dynamic"}}}])
    path = tmp_path / "auto-compaction.json"
    path.write_text(json.dumps([{"dataSource": "w", "maxRowsPerSegment": 5}]))
    loaded = load_settings(str(path))
    assert loaded.compaction_configs[0].tuning_config.effective_partitions_spec.max_rows_per_segment == 5
    assert loaded.max_compaction_task_slots == 4 and loaded.compaction_configs[0].task_priority == 25
    with pytest.raises(SpecError, match="cannot read"):
        load_settings(str(tmp_path / "missing.json"))


def test_needs_compaction_reasons():
    wanted = wanted_state(tuning_config=IndexTuningConfig.parse({"partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": TARGET_ROWS}}))
    done = segments(1, 1, rows=5000, last_state=state())
    assert needs_compaction(done, wanted) is None
    # maxTotalRows only bounds memory while building: it never makes a chunk "differ"
    other_total = dict(state(), partitionsSpec={"type": "dynamic", "maxRowsPerSegment": TARGET_ROWS, "maxTotalRows": 7})
    assert needs_compaction(segments(1, 1, rows=5000, last_state=other_total), wanted) is None
    mixed = segments(1, 1, rows=5000, last_state=state()) + [
        s.model_copy(update={"last_compaction_state": state(max_rows=5)}) for s in segments(1, 2, rows=5000)[1:]
    ]
    assert "different states" in needs_compaction(mixed, wanted)
    wants_day = wanted_state(tuning_config=IndexTuningConfig.parse({"partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": TARGET_ROWS}}),
                             granularity_spec=type("G", (), {"segment_granularity": Granularity.parse("MONTH"), "query_granularity": None, "rollup": None})())
    assert "segmentGranularity is DAY, the config wants MONTH" in needs_compaction(done, wants_day)


def _index_spec(hour: int) -> dict:
    rows = json_lines({"ts": f"2024-01-{d:02d}T{hour:02d}:00:00Z", "d": f"k{d % 2}", "v": d} for d in range(1, 6))
    return index_task(
        data_source="wiki", data=rows, timestamp_format="iso", metrics=COUNT_AND_SUM_V, intervals=["2024-01-01/2024-01-06"],
        io={"appendToExisting": True},
    )


def test_plan_compact_plan_again_does_not_pick_a_compacted_chunk_twice(rt):
    for hour in range(3):  # three appends: every day has 3 small segments
        index.run(_index_spec(hour), rt)
    config = settings(config={"granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "HOUR"},
                              "metricsSpec": [{"type": "longSum", "name": "count", "fieldName": "count"},
                                              {"type": "longSum", "name": "v", "fieldName": "v"}]},
                      maxCompactionTaskSlots=10)
    first = plan_auto_compaction(config, rt.store, rt.lockbox)
    assert [v.category for v in first.verdicts] == ["too_recent"] + ["compact"] * 4
    for spec in first.tasks:
        report = compact.run(spec, rt)
        assert report.status == "SUCCESS"

    again = plan_auto_compaction(config, rt.store, rt.lockbox)
    assert [v.category for v in again.verdicts] == ["too_recent"] + ["already_compacted"] * 4
    assert again.tasks == []

    # new data appended to a compacted day makes it a candidate again, for that reason
    index.run(_index_spec(7), rt)
    third = plan_auto_compaction(config, rt.store, rt.lockbox)
    assert [v.category for v in third.verdicts] == ["too_recent"] + ["compact"] * 4
    assert all(v.reason.startswith("fragmented: 2 of 2") for v in third.verdicts[1:])

    # a planned task whose chunk changes before it runs fails cleanly on the hash
    stale = third.tasks[0]
    index.run(_index_spec(9), rt)
    with pytest.raises(Exception, match="sha256OfSortedSegmentIds"):
        compact.run(stale, rt)


def test_max_input_segment_bytes_per_task_is_refused_naming_what_druid_meant():
    # Druid's key is the segments split hint's (SegmentsSplitHintSpec, apache/druid
    # core/src/main/java/org/apache/druid/data/input/SegmentsSplitHintSpec.java); the compaction config's own size
    # limit is inputSegmentSizeBytes (apache/druid#6407). docs/compaction.md has the history.
    from druidflow.compaction.config import DataSourceCompactionConfig

    with pytest.raises(SpecError) as info:
        DataSourceCompactionConfig.parse({"dataSource": "wikipedia", "maxInputSegmentBytesPerTask": 500000000})
    assert info.value.path == "maxInputSegmentBytesPerTask" and info.value.value == 500000000
    assert "inputSegmentSizeBytes" in info.value.reason and "splitHintSpec" in info.value.reason
