"""Task envelopes: dispatch, ids, priorities, group ids, lock settings, and each non-index task type."""

from __future__ import annotations

import copy
import json
import re

import pytest

from druidflow.exceptions import SpecError
from druidflow.granularity import DAY, HOUR, MONTH
from druidflow.intervals import Interval
from druidflow.specs.tasks import (
    AppendTask,
    CompactionIntervalSpec,
    CompactTask,
    ConvertSegmentTask,
    IndexTask,
    KillTask,
    MergeTask,
    SameIntervalMergeTask,
    SpecificSegmentsSpec,
    generate_task_id,
    parse_task,
    random_id_part,
    segment_id_interval,
)
from tests.specs.helpers import assert_spec_error
from tests.specs.test_ingestion import CLASSIC_WIKIPEDIA, MODERN_EDITS

INSTANT = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"


def seg(ds="wiki", interval="2024-01-01/2024-01-02", version="2024-02-01T00:00:00.000Z", shard=None, **kw):
    out = {"dataSource": ds, "interval": interval, "version": version, "shardSpec": shard or {"type": "none"}, **kw}
    return out


def seg_id(ds="wiki", interval="2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z", version="2024-02-01T00:00:00.000Z", part=None):
    return f"{ds}_{interval}_{version}" + (f"_{part}" if part else "")


# -------------------------------------------------------------------------------------------------- dispatch


def test_parse_task_dispatches_on_type_from_dict_or_json():
    assert isinstance(parse_task(json.dumps(CLASSIC_WIKIPEDIA)), IndexTask)
    assert isinstance(parse_task({"type": "kill", "dataSource": "wiki", "interval": "2024-01-01/P1D"}), KillTask)
    task = parse_task(MODERN_EDITS)
    assert parse_task(task) is task


def test_unknown_type_lists_the_supported_ones():
    # index_realtime: Druid's removed realtime task, which Druidflow does not take (Kafka tasks come from supervisors)
    err = assert_spec_error(lambda: parse_task({"type": "index_realtime", "spec": {}}), "type", "index_realtime")
    for kind in ("index", "index_parallel", "index_hadoop", "compact", "kill", "merge", "append", "same_interval_merge", "convert_segment"):
        assert kind in err.reason


def test_missing_type_not_an_object_and_bad_json():
    assert_spec_error(lambda: parse_task({"dataSource": "x"}), "type", None)
    assert_spec_error(lambda: parse_task([1, 2], "task"), "task", [1, 2])
    err = assert_spec_error(lambda: parse_task('{"type": "kill",', "task"), "task", '{"type": "kill",')
    assert "not valid JSON" in err.reason


def test_index_parallel_is_the_same_model():
    task = parse_task({**copy.deepcopy(MODERN_EDITS), "type": "index_parallel"})
    assert isinstance(task, IndexTask) and task.task_type == "index_parallel"
    spec = copy.deepcopy(MODERN_EDITS)
    spec["spec"]["tuningConfig"] = {"type": "index_parallel", "maxNumConcurrentSubTasks": 4}
    assert parse_task(spec).spec.tuning_config.max_num_concurrent_sub_tasks == 4


# ---------------------------------------------------------------------------------------------------- ids


def test_random_id_part_is_eight_letters_a_to_p():
    parts = {random_id_part() for _ in range(200)}
    assert all(re.fullmatch(r"[a-p]{8}", p) for p in parts)
    assert len(parts) > 150


def test_generated_index_id_has_druids_modern_form_without_interval():
    task = parse_task(CLASSIC_WIKIPEDIA)
    assert re.fullmatch(rf"index_wikipedia_[a-p]{{8}}_{INSTANT}", task.task_id), task.task_id
    assert task.id == task.task_id


def test_generated_id_is_stable_after_parse_and_round_trip():
    task = parse_task(CLASSIC_WIKIPEDIA)
    assert task.task_id == task.task_id
    assert parse_task(task.model_dump()).task_id == task.task_id
    assert parse_task(CLASSIC_WIKIPEDIA).task_id != task.task_id  # a new submission gets a new id


def test_interval_tasks_put_the_interval_in_the_id():
    kill = parse_task({"type": "kill", "dataSource": "wiki", "interval": "2024-01-01/2024-01-03"})
    assert re.fullmatch(
        rf"kill_wiki_[a-p]{{8}}_2024-01-01T00:00:00\.000Z_2024-01-03T00:00:00\.000Z_{INSTANT}", kill.task_id
    ), kill.task_id
    conv = parse_task({"type": "version_converter", "dataSource": "wiki", "interval": "2024-01-01/P1D", "indexSpec": {}})
    assert re.fullmatch(rf"convert_segment_wiki_[a-p]{{8}}_2024-01-01T00:00:00\.000Z_2024-01-02T00:00:00\.000Z_{INSTANT}", conv.task_id)
    same = parse_task({"type": "same_interval_merge", "dataSource": "wiki", "interval": "2024-01-01/P1D", "aggregations": []})
    assert same.task_id.startswith("same_interval_merge_wiki_") and "_2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z_" in same.task_id


def test_model_parse_without_type_uses_the_models_type_for_the_id():
    task = KillTask.parse({"dataSource": "wiki", "interval": "2024-01-01/P1D"})
    assert task.task_type == "kill" and task.task_id.startswith("kill_wiki_")


def test_generate_task_id():
    assert re.fullmatch(r"compact_ds_[a-p]{8}_1970-01-01T00:00:00\.001Z", generate_task_id("compact", "ds", now=1))
    iv = Interval.parse("2024-01-01/P1D")
    assert generate_task_id("kill", "ds", iv, now=0).endswith("_2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z_1970-01-01T00:00:00.000Z")


def test_given_id_is_kept_and_checked():
    assert parse_task({**MODERN_EDITS, "id": "my task 1"}).task_id == "my task 1"
    assert_spec_error(lambda: parse_task({**MODERN_EDITS, "id": "a/b"}), "id", "a/b")
    assert_spec_error(lambda: parse_task({**MODERN_EDITS, "id": ".x"}), "id", ".x")
    assert_spec_error(lambda: parse_task({**MODERN_EDITS, "id": "a\nb"}), "id", "a\nb")


# ---------------------------------------------------------------------------------- priorities, groups, locks


KILL = {"type": "kill", "dataSource": "wiki", "interval": "2024-01-01/2024-01-02"}
COMPACT = {"type": "compact", "dataSource": "wiki", "interval": "2024-01-01/2024-01-02"}
MERGE = {"type": "merge", "dataSource": "wiki", "segments": [seg()], "aggregations": [{"type": "count", "name": "c"}]}
APPEND = {"type": "append", "dataSource": "wiki", "segments": [seg()]}
SAME = {"type": "same_interval_merge", "dataSource": "wiki", "interval": "2024-01-01/P1D", "aggregations": [{"type": "count", "name": "c"}]}
CONVERT = {"type": "convert_segment", "dataSource": "wiki", "interval": "2024-01-01/P1D", "indexSpec": {"bitmap": {"type": "roaring"}}}


@pytest.mark.parametrize(
    "spec, priority",
    [(CLASSIC_WIKIPEDIA, 50), ({**CLASSIC_WIKIPEDIA, "type": "index_parallel"}, 50), (COMPACT, 25), (MERGE, 25), (APPEND, 25),
     (KILL, 0), (SAME, 25), (CONVERT, 0)],  # same_interval_merge: 25 as the docs list merge tasks (issue #12)
)
def test_default_priorities(spec, priority):
    assert parse_task(spec).priority == priority


def test_context_priority_overrides_and_is_checked():
    assert parse_task({**KILL, "context": {"priority": 90}}).priority == 90
    assert parse_task({**COMPACT, "context": {"priority": "-5"}}).priority == -5
    assert_spec_error(lambda: parse_task({**KILL, "context": {"priority": "high"}}), "context.priority", "high")
    assert_spec_error(lambda: parse_task({**KILL, "context": {"priority": True}}), "context.priority", True)


def test_group_ids():
    replace = parse_task(MODERN_EDITS)
    assert replace.group_id == replace.task_id
    spec = copy.deepcopy(MODERN_EDITS)
    spec["spec"]["ioConfig"]["appendToExisting"] = True
    assert parse_task(spec).group_id == "index_append_edits"
    for other in (KILL, COMPACT, MERGE, CONVERT):
        task = parse_task(other)
        assert task.group_id == task.task_id


def test_lock_timeout():
    assert parse_task(KILL).lock_timeout_ms == 300_000
    assert parse_task({**KILL, "context": {"taskLockTimeout": 1000}}).lock_timeout_ms == 1000
    assert_spec_error(lambda: parse_task({**KILL, "context": {"taskLockTimeout": 0}}), "context.taskLockTimeout", 0)


def test_lock_types():
    append = copy.deepcopy(MODERN_EDITS)
    append["spec"]["ioConfig"]["appendToExisting"] = True
    assert parse_task(MODERN_EDITS).lock_type == "EXCLUSIVE"
    assert parse_task({**MODERN_EDITS, "context": {"useConcurrentLocks": True}}).lock_type == "REPLACE"
    assert parse_task({**append, "context": {"useConcurrentLocks": True}}).lock_type == "APPEND"
    assert parse_task({**append, "context": {"useSharedLock": True}}).lock_type == "SHARED"
    assert parse_task({**MODERN_EDITS, "context": {"useSharedLock": True}}).lock_type == "EXCLUSIVE"  # not appending
    assert parse_task({**MODERN_EDITS, "context": {"taskLockType": "append"}}).lock_type == "EXCLUSIVE"
    assert parse_task({**append, "context": {"taskLockType": "APPEND"}}).lock_type == "APPEND"
    assert parse_task({**KILL, "context": {"useConcurrentLocks": True}}).lock_type == "REPLACE"
    assert parse_task({**COMPACT, "context": {"taskLockType": "REPLACE"}}).lock_type == "REPLACE"
    assert_spec_error(lambda: parse_task({**KILL, "context": {"taskLockType": "MINE"}}), "context.taskLockType", "MINE")
    assert_spec_error(lambda: parse_task({**KILL, "context": {"useConcurrentLocks": "sure"}}), "context.useConcurrentLocks", "sure")
    assert_spec_error(lambda: parse_task({**KILL, "context": {"forceTimeChunkLock": False}}), "context.forceTimeChunkLock", False)


def test_other_context_keys_pass_through():
    task = parse_task({**KILL, "context": {"storeCompactionState": True, "anything": [1]}})
    assert task.context == {"storeCompactionState": True, "anything": [1]}
    assert task.context_flag("storeCompactionState") is True and task.context_flag("dryRun") is False


# -------------------------------------------------------------------------------------------------- compact


def test_compact_interval_form_normalises_to_input_spec():
    task = parse_task({**COMPACT, "dimensions": ["page"], "segmentGranularity": "DAY", "tuningConfig": {"type": "index", "maxRowsPerSegment": 10}})
    assert isinstance(task, CompactTask)
    assert task.io_config.input_spec == CompactionIntervalSpec(interval=Interval.parse("2024-01-01/2024-01-02"))
    assert task.interval == Interval.parse("2024-01-01/2024-01-02") == task.requested_interval
    assert task.segment_ids is None and task.sha256_of_sorted_segment_ids is None
    assert task.dimensions_spec.dimension_names == ["page"]
    assert task.granularity_spec.segment_granularity == DAY and task.granularity_spec.query_granularity is None
    assert task.tuning_config.max_rows_per_segment == 10
    dumped = task.model_dump()
    assert "interval" not in dumped and "dimensions" not in dumped and "segmentGranularity" not in dumped
    assert dumped["ioConfig"]["inputSpec"]["type"] == "interval"
    assert parse_task(dumped) == task


def test_compact_modern_input_specs():
    sha = "AB" * 32
    task = parse_task({**_no_interval(COMPACT), "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/P1D",
                                                                                              "sha256OfSortedSegmentIds": sha}}})
    assert task.sha256_of_sorted_segment_ids == sha.lower()
    ids = [seg_id(), seg_id(interval="2024-01-02T00:00:00.000Z_2024-01-03T00:00:00.000Z", part=3)]
    task = parse_task({**_no_interval(COMPACT), "ioConfig": {"type": "compact", "inputSpec": {"type": "segments", "segments": ids}}})
    assert task.io_config.input_spec == SpecificSegmentsSpec(segments=ids)
    assert task.segment_ids == ids and task.interval is None
    assert task.requested_interval == Interval.parse("2024-01-01/2024-01-03")


def test_compact_classic_segments_form_takes_segment_objects_or_ids():
    task = parse_task({**_no_interval(COMPACT), "segments": [seg(shard={"type": "numbered", "partitionNum": 1, "partitions": 2}), seg_id()]})
    assert task.segment_ids == [seg_id(part=1), seg_id()]
    assert_spec_error(
        lambda: parse_task({**_no_interval(COMPACT), "segments": [{"dataSource": "wiki", "interval": "bad", "version": "v"}]}),
        "segments[0].interval",
        "bad",
    )


def test_compact_granularity_spec_and_metrics():
    task = parse_task(
        {**COMPACT, "granularitySpec": {"segmentGranularity": "MONTH", "queryGranularity": "HOUR", "rollup": False},
         "metricsSpec": [{"type": "longSum", "name": "count", "fieldName": "count"}], "transformSpec": {"filter": None}}
    )
    g = task.granularity_spec
    assert (g.segment_granularity, g.query_granularity, g.rollup) == (MONTH, HOUR, False)
    assert task.metrics_spec[0].name == "count"
    same = parse_task({**COMPACT, "segmentGranularity": "MONTH", "granularitySpec": {"segmentGranularity": "month"}})
    assert same.granularity_spec.segment_granularity == MONTH


def _no_interval(spec):
    return {k: v for k, v in spec.items() if k != "interval"}


@pytest.mark.parametrize(
    "spec, path, value",
    [
        (_no_interval(COMPACT), "ioConfig", None),
        ({**COMPACT, "segments": [seg_id()]}, "segments", [seg_id()]),
        ({**COMPACT, "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/P1D"}}}, "ioConfig",
         {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/P1D"}}),
        ({**COMPACT, "interval": "2024-01-01/2024-01-01"}, "interval", "2024-01-01T00:00:00.000Z/2024-01-01T00:00:00.000Z"),
        ({**COMPACT, "interval": "2024-01-02/2024-01-01"}, "interval", "2024-01-02/2024-01-01"),
        ({**_no_interval(COMPACT), "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/2024-01-01"}}},
         "ioConfig.inputSpec.interval", "2024-01-01T00:00:00.000Z/2024-01-01T00:00:00.000Z"),
        ({**_no_interval(COMPACT), "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/P1D",
                                                                                 "sha256OfSortedSegmentIds": "abc"}}},
         "ioConfig.inputSpec.sha256OfSortedSegmentIds", "abc"),
        ({**_no_interval(COMPACT), "ioConfig": {"type": "compact", "inputSpec": {"type": "segments", "segments": []}}},
         "ioConfig.inputSpec.segments", []),
        ({**_no_interval(COMPACT), "ioConfig": {"type": "compact", "inputSpec": {"type": "segments", "segments": [seg_id(), seg_id()]}}},
         "ioConfig.inputSpec.segments[1]", seg_id()),
        ({**_no_interval(COMPACT), "segments": [seg_id(ds="other")]}, "segments[0]", seg_id(ds="other")),
        ({**_no_interval(COMPACT), "segments": ["wiki_garbage"]}, "segments[0]", "wiki_garbage"),
        ({**_no_interval(COMPACT), "segments": [seg_id(), seg_id()]}, "segments[1]", seg_id()),
        ({**_no_interval(COMPACT), "segments": []}, "segments", []),
        ({**_no_interval(COMPACT), "ioConfig": {"type": "compact", "inputSpec": {"type": "segments", "segments": [seg_id(ds="other")]}}},
         "ioConfig.inputSpec.segments[0]", seg_id(ds="other")),
        ({**_no_interval(COMPACT), "ioConfig": {"type": "compact", "inputSpec": {"type": "minor", "interval": "2024-01-01/P1D"}}},
         "ioConfig.inputSpec.type", "minor"),
        ({**COMPACT, "dimensions": ["a"], "dimensionsSpec": {"dimensions": ["b"]}}, "dimensions", ["a"]),
        ({**COMPACT, "segmentGranularity": "DAY", "granularitySpec": {"segmentGranularity": "HOUR"}}, "segmentGranularity", "DAY"),
        ({**COMPACT, "granularitySpec": {"segmentGranularity": "EON"}}, "granularitySpec.segmentGranularity", "EON"),
        ({**COMPACT, "metricsSpec": [{"type": "count", "name": "c"}, {"type": "count", "name": "c"}]}, "metricsSpec[1].name", "c"),
        ({**COMPACT, "metricsSpec": [{"type": "javascript", "name": "u", "fieldName": "u"}]}, "metricsSpec[0].type", "javascript"),
        ({**COMPACT, "tuningConfig": {"awaitSegmentAvailabilityTimeoutMillis": 10}}, "tuningConfig.awaitSegmentAvailabilityTimeoutMillis", 10),
        ({**COMPACT, "tuningConfig": {"partitionsSpec": {"type": "hashed"}}}, "tuningConfig.partitionsSpec.type", "hashed"),
        ({**COMPACT, "dataSource": "a/b"}, "dataSource", "a/b"),
    ],
)
def test_compact_errors(spec, path, value):
    assert_spec_error(lambda: parse_task(spec), path, value)


def test_segment_id_interval():
    assert segment_id_interval("my_ds", "my_ds_2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z_v1_2") == Interval.parse("2024-01-01/P1D")
    with pytest.raises(ValueError):
        segment_id_interval("my_ds", "my_2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z_v1")


# ---------------------------------------------------------------------------------------------------- kill


def test_kill_defaults_and_fields():
    task = parse_task(KILL)
    assert isinstance(task, KillTask)
    assert (task.batch_size, task.limit, task.versions, task.max_used_status_last_updated_time, task.mark_as_unused) == (100, None, None, None, False)
    assert task.dry_run is False and task.max_batches is None
    task = parse_task({**KILL, "versions": ["v1", "v2"], "batchSize": 10, "limit": 25,
                       "maxUsedStatusLastUpdatedTime": "2024-03-01T00:00:00Z", "context": {"dryRun": True}})
    assert task.versions == ["v1", "v2"] and task.max_batches == 3 and task.dry_run
    assert task.max_used_status_last_updated_ms == Interval.parse("2024-03-01/P1D").start
    assert parse_task(task.model_dump()) == task
    assert parse_task({**KILL, "markAsUnused": True}).mark_as_unused


@pytest.mark.parametrize(
    "spec, path, value",
    [
        ({**KILL, "batchSize": 0}, "batchSize", 0),
        ({**KILL, "limit": 0}, "limit", 0),
        ({**KILL, "limit": -3}, "limit", -3),
        ({k: v for k, v in KILL.items() if k != "interval"}, "interval", None),
        ({**KILL, "interval": "2024-01-01/2024-01-01"}, "interval", "2024-01-01T00:00:00.000Z/2024-01-01T00:00:00.000Z"),
        ({**KILL, "interval": "yesterday"}, "interval", "yesterday"),
        ({**KILL, "versions": []}, "versions", []),
        ({**KILL, "versions": ["v1", ""]}, "versions[1]", ""),
        ({**KILL, "maxUsedStatusLastUpdatedTime": "last week"}, "maxUsedStatusLastUpdatedTime", "last week"),
        ({**KILL, "markAsUnused": True, "limit": 5}, "limit", 5),
        ({**KILL, "markAsUnused": True, "versions": ["v"]}, "versions", ["v"]),
        ({k: v for k, v in KILL.items() if k != "dataSource"}, "dataSource", None),
        ({**KILL, "dataSource": ""}, "dataSource", ""),
        ({**KILL, "context": {"dryRun": "perhaps"}}, "context.dryRun", "perhaps"),
        ({**KILL, "intervals": ["2024-01-01/P1D"]}, "intervals", ["2024-01-01/P1D"]),
    ],
)
def test_kill_errors(spec, path, value):
    assert_spec_error(lambda: parse_task(spec), path, value)


# ------------------------------------------------------------------------------------ merge, append, convert


def test_merge_and_append():
    two = [seg(), seg(interval="2024-01-03/2024-01-04", shard={"type": "numbered", "partitionNum": 0, "partitions": 1})]
    merge = parse_task({**MERGE, "segments": two, "rollup": False, "indexSpec": {"metricCompression": "zstd"}})
    assert isinstance(merge, MergeTask) and merge.rollup is False and merge.index_spec.metric_compression == "zstd"
    assert merge.interval == Interval.parse("2024-01-01/2024-01-04")
    assert merge.segment_ids == [
        "wiki_2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z_2024-02-01T00:00:00.000Z",
        "wiki_2024-01-03T00:00:00.000Z_2024-01-04T00:00:00.000Z_2024-02-01T00:00:00.000Z",
    ]
    assert merge.aggregations[0].combining().type == "longSum"
    assert parse_task(merge.model_dump()) == merge
    append = parse_task({**APPEND, "segments": [seg(ds="WIKI")]})
    assert isinstance(append, AppendTask) and append.aggregations is None
    assert parse_task(append.model_dump()) == append


@pytest.mark.parametrize(
    "spec, path, value",
    [
        ({**MERGE, "segments": []}, "segments", []),
        ({k: v for k, v in MERGE.items() if k != "aggregations"}, "aggregations", None),
        ({**MERGE, "segments": [seg(ds="other")]}, "segments[0].dataSource", "other"),
        ({**MERGE, "segments": [seg(), seg()]}, "segments[1]", "wiki_2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z_2024-02-01T00:00:00.000Z"),
        ({**MERGE, "segments": [seg(shard={"type": "numbered", "partitionNum": 1, "partitions": 2})]}, "segments[0].shardSpec",
         {"type": "numbered", "partitionNum": 1, "partitions": 2}),
        ({**MERGE, "aggregations": [{"type": "count", "name": "c"}, {"type": "count", "name": "c"}]}, "aggregations[1].name", "c"),
        ({**MERGE, "aggregations": [{"type": "javascript", "name": "j"}]}, "aggregations[0].type", "javascript"),
        ({**MERGE, "segments": [{"dataSource": "wiki", "interval": "2024-01-01/P1D"}]}, "segments[0].version", None),
    ],
)
def test_merge_append_errors(spec, path, value):
    assert_spec_error(lambda: parse_task(spec), path, value)


def test_append_refuses_a_partition_of_a_sharded_chunk():
    err = assert_spec_error(
        lambda: parse_task({**APPEND, "segments": [seg(shard={"type": "hashed", "partitionNum": 0, "partitions": 3})]}), "segments[0].shardSpec"
    )
    assert err.value["partitions"] == 3 and "unsharded" in err.reason


def test_same_interval_merge():
    task = parse_task(SAME)
    assert isinstance(task, SameIntervalMergeTask) and task.rollup and task.interval == Interval.parse("2024-01-01/P1D")
    assert parse_task(task.model_dump()) == task
    assert_spec_error(lambda: parse_task({k: v for k, v in SAME.items() if k != "aggregations"}), "aggregations", None)
    assert_spec_error(lambda: parse_task({**SAME, "interval": "2024-01-01/2024-01-01"}), "interval")


def test_convert_segment():
    task = parse_task({**CONVERT, "force": True, "validate": False})
    assert isinstance(task, ConvertSegmentTask) and task.task_type == "convert_segment"
    assert task.force and task.validate_segments is False and task.index_spec.bitmap.type == "roaring"
    assert task.model_dump()["validate"] is False
    assert parse_task(task.model_dump()) == task
    assert parse_task(CONVERT).validate_segments is True and parse_task(CONVERT).force is False
    assert ConvertSegmentTask.converted_version("2024-02-01T00:00:00.000Z") == "2024-02-01T00:00:00.000Z_converted"
    assert ConvertSegmentTask.converted_version("v_converted") == "v_converted_converted"


def test_convert_single_segment_takes_its_interval():
    task = parse_task({"type": "convert_segment", "dataSource": "wiki", "segment": seg(), "indexSpec": {}})
    assert task.interval == Interval.parse("2024-01-01/2024-01-02") and task.segment.data_source == "wiki"
    assert "_2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z_" in task.task_id


@pytest.mark.parametrize(
    "spec, path, value",
    [
        ({k: v for k, v in CONVERT.items() if k != "indexSpec"}, "indexSpec", None),
        ({k: v for k, v in CONVERT.items() if k != "interval"}, "interval", None),
        ({**CONVERT, "segment": seg(interval="2024-03-01/P1D")}, "segment.interval", "2024-03-01T00:00:00.000Z/2024-03-02T00:00:00.000Z"),
        ({**CONVERT, "segment": seg(ds="other")}, "segment.dataSource", "other"),
        ({**CONVERT, "indexSpec": {"dimensionCompression": "snappy"}}, "indexSpec.dimensionCompression", "snappy"),
        ({**CONVERT, "validate": "perhaps"}, "validate", "perhaps"),
    ],
)
def test_convert_errors(spec, path, value):
    assert_spec_error(lambda: parse_task(spec), path, value)


# ---------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("spec", [CLASSIC_WIKIPEDIA, MODERN_EDITS, KILL, COMPACT, MERGE, APPEND, SAME, CONVERT], ids=lambda s: s["type"])
def test_round_trip(spec):
    task = parse_task(spec)
    dumped = task.model_dump()
    assert parse_task(dumped) == task
    assert parse_task(json.dumps(dumped)).model_dump() == dumped


def test_resource():
    task = parse_task({**KILL, "resource": {"availabilityGroup": "g", "requiredCapacity": 2}})
    assert task.resource.availability_group == "g" and task.resource.required_capacity == 2
    assert_spec_error(lambda: parse_task({**KILL, "resource": {"requiredCapacity": 0}}), "resource.requiredCapacity", 0)


def test_index_task_envelope_may_repeat_the_data_source_as_druid_writes_it():
    # Druid's integration-test specs (e.g. indexer/json_path_index_task.json) carry "dataSource" beside "spec".
    from tests.inputs.test_flatten_paths import JSON_PATH_INDEX_TASK

    assert parse_task(JSON_PATH_INDEX_TASK).data_source == "json_path_index_test"
    with pytest.raises(SpecError, match="differs from spec.dataSchema.dataSource"):
        parse_task({**JSON_PATH_INDEX_TASK, "dataSource": "other"})
