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


def test_a_compaction_asking_for_parallel_sub_tasks_is_refused(rt):
    index.run(spec(), rt)
    compact_spec = {
        "type": "compact",
        "dataSource": "f",
        "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/2024-01-02"}},
        "tuningConfig": {"type": "index_parallel", "maxNumConcurrentSubTasks": 4},
    }
    with pytest.raises(SpecError, match="tuningConfig.maxNumConcurrentSubTasks"):
        compact.submit(compact_spec, rt)


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
