"""Fields Druidflow cannot honour are refused, naming the field, when set to anything but their default; and
``maxTotalRows`` cuts segments at exactly that many rows (incremental pushes)."""

from __future__ import annotations

import json

import pytest

from druidflow.exceptions import SpecError
from druidflow.tasks import compact, index
from druidflow.tasks.runtime import Runtime


@pytest.fixture
def rt(sqlite_url, tmp_path) -> Runtime:
    return Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")


def spec(n: int = 10, tuning: dict | None = None, dims: list | None = None, **top) -> dict:
    rows = "".join(json.dumps({"ts": f"2024-01-01T{i % 24:02d}:{i % 60:02d}:00Z", "d": f"k{i}"}) + "\n" for i in range(n))
    return {
        "type": "index",
        **top,
        "spec": {
            "dataSchema": {
                "dataSource": "f",
                "timestampSpec": {"column": "ts"},
                "dimensionsSpec": {"dimensions": dims or ["d"]},
                "metricsSpec": [{"type": "count", "name": "count"}],
                "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "NONE", "rollup": False, "intervals": ["2024-01-01/2024-01-02"]},
            },
            "ioConfig": {"type": "index", "inputSource": {"type": "inline", "data": rows}, "inputFormat": {"type": "json"}},
            "tuningConfig": {"type": "index", **(tuning or {})},
        },
    }


@pytest.mark.parametrize(
    "tuning, path",
    [
        ({"numPersistThreads": 4}, "spec.tuningConfig.numPersistThreads"),
        ({"maxPendingPersists": 2}, "spec.tuningConfig.maxPendingPersists"),
        ({"pushTimeout": 1000}, "spec.tuningConfig.pushTimeout"),
        ({"indexSpec": {"bitmap": {"type": "concise"}}}, "spec.tuningConfig.indexSpec.bitmap.type"),
        ({"indexSpec": {"stringDictionaryEncoding": {"type": "frontCoded", "bucketSize": 4}}}, "spec.tuningConfig.indexSpec.stringDictionaryEncoding"),
        ({"segmentWriteOutMediumFactory": {"type": "offHeapMemory"}}, "spec.tuningConfig.segmentWriteOutMediumFactory"),
    ],
)
def test_a_knob_without_an_equivalent_is_refused_by_name(rt, tuning, path):
    with pytest.raises(SpecError) as caught:
        index.submit(spec(tuning=tuning), rt)
    assert caught.value.path.startswith(path) and "not supported" in str(caught.value)


def test_the_default_values_of_those_knobs_are_accepted(rt):
    tuning = {"numPersistThreads": 1, "maxPendingPersists": 0, "pushTimeout": 0, "indexSpec": {"bitmap": {"type": "roaring"}}}
    report = index.run(spec(tuning=tuning), rt)
    assert report.status == "SUCCESS"


def test_create_bitmap_index_false_and_task_resources_are_refused(rt):
    with pytest.raises(SpecError, match=r"dimensions\[0\]\.createBitmapIndex"):
        index.submit(spec(dims=[{"name": "d", "type": "string", "createBitmapIndex": False}]), rt)
    with pytest.raises(SpecError, match=r"resource\.requiredCapacity"):
        index.submit(spec(resource={"availabilityGroup": None, "requiredCapacity": 3}), rt)


def test_a_compaction_bounding_its_parallel_sub_tasks_runs(rt):
    index.run(spec(), rt)
    compact_spec = {
        "type": "compact",
        "dataSource": "f",
        "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/2024-01-02"}},
        "tuningConfig": {"type": "index_parallel", "maxNumConcurrentSubTasks": 4},
    }
    report = compact.run(compact_spec, rt)  # honoured: at most 4 build units (here one chunk, one unit)
    assert report.status == "SUCCESS"


def test_max_total_rows_cuts_segments_at_exactly_that_many_rows(rt):
    tuning = {"maxRowsInMemory": 7, "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 1000, "maxTotalRows": 30}}
    report = index.run(spec(n=100, tuning=tuning), rt)
    assert [s.num_rows for s in report.segments] == [30, 30, 30, 10]
    assert [s.partition_num for s in report.segments] == [0, 1, 2, 3]
    assert {s.shard_spec.partitions for s in report.segments} == {4}  # one complete core set, published at once


def test_auto_compaction_refuses_a_task_slot_ratio():
    from druidflow.compaction.config import load_settings

    with pytest.raises(SpecError, match="compactionTaskSlotRatio"):
        load_settings({"compactionTaskSlotRatio": 0.1, "compactionConfigs": []})
    assert load_settings({"compactionConfigs": []}).compaction_task_slot_ratio is None


def test_assume_grouped_is_refused_for_range_partitioning(rt):
    tuning = {"forceGuaranteedRollup": True, "partitionsSpec": {"type": "range", "partitionDimensions": ["d"], "targetRowsPerSegment": 5, "assumeGrouped": True}}
    with pytest.raises(SpecError, match="partitionsSpec.assumeGrouped"):
        index.submit(spec(tuning=tuning), rt)


def test_store_empty_columns_false_and_a_segment_availability_wait_are_refused(rt):
    with pytest.raises(SpecError, match="context.storeEmptyColumns"):
        index.submit(spec(context={"storeEmptyColumns": False}), rt)
    with pytest.raises(SpecError, match="awaitSegmentAvailabilityTimeoutMillis"):
        index.submit(spec(tuning={"awaitSegmentAvailabilityTimeoutMillis": 1000}), rt)
    assert index.run(spec(context={"storeEmptyColumns": True}), rt).status == "SUCCESS"


def test_a_kill_asking_for_task_slots_is_refused(rt):
    from druidflow.tasks import kill

    with pytest.raises(SpecError, match=r"resource\.requiredCapacity"):
        kill.run({"type": "kill", "dataSource": "f", "interval": "2024-01-01/2024-01-02", "resource": {"requiredCapacity": 2}}, rt)


def test_a_druid_input_with_segment_ids_reads_exactly_those_segments_in_their_windows(rt):
    two_days = spec(n=48)
    two_days["spec"]["dataSchema"]["granularitySpec"]["intervals"] = ["2024-01-01/2024-01-03"]
    rows = "".join(json.dumps({"ts": f"2024-01-0{1 + i % 2}T{i % 24:02d}:00:00Z", "d": f"k{i}"}) + "\n" for i in range(48))
    two_days["spec"]["ioConfig"]["inputSource"]["data"] = rows
    index.run(two_days, rt)
    day1 = next(s for s in rt.store.used_segments("f") if str(s.interval).startswith("2024-01-01"))
    reindex = spec()
    reindex["spec"]["dataSchema"]["dataSource"] = "g"
    reindex["spec"]["dataSchema"]["granularitySpec"]["intervals"] = ["2024-01-01/2024-01-03"]
    reindex["spec"]["ioConfig"]["inputSource"] = {
        "type": "druid",
        "dataSource": "f",
        "segments": [{"segmentId": day1.id, "intervals": ["2024-01-01T00:00:00Z/2024-01-01T12:00:00Z"]}],
    }
    reindex["spec"]["dataSchema"]["timestampSpec"] = {"column": "__time", "format": "millis"}
    report = index.run(reindex, rt)
    assert sum(s.num_rows for s in report.segments) == 12  # day 1's rows of hours 0-11 only; day 2 is not named
