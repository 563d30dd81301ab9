"""tuningConfig: every field's default, the deprecated aliases, partitionsSpec types and the consistency rules."""

from __future__ import annotations

import pytest

from druidflow.specs.tuning import (
    JAVA_INT_MAX,
    DimensionRangePartitionsSpec,
    DynamicPartitionsSpec,
    HashedPartitionsSpec,
    IndexSpec,
    IndexTuningConfig,
    SingleDimensionPartitionsSpec,
)
from druidflow.specs.unknown_keys import spec_warnings
from tests.specs.helpers import assert_spec_error

P = "spec.tuningConfig"


def parse(data):
    return IndexTuningConfig.parse(data, P)


def test_defaults_of_every_field():
    t = parse({})
    assert t.type == "index"
    assert t.max_rows_per_segment is None and t.max_total_rows is None and t.num_shards is None
    assert t.partition_dimensions is None and t.partitions_spec is None
    assert t.max_rows_in_memory == 1_000_000
    assert t.max_bytes_in_memory == 0
    assert t.skip_bytes_in_memory_overhead_check is False
    assert t.max_pending_persists == 0
    assert t.num_persist_threads == 1
    assert t.max_columns_to_merge == -1
    assert t.appendable_index_spec.type == "onheap"
    assert t.index_spec == IndexSpec()
    assert t.index_spec_for_intermediate_persists is None
    assert t.effective_index_spec_for_intermediate_persists == t.index_spec
    assert t.force_extendable_shard_specs is False and t.force_guaranteed_rollup is False
    assert t.segment_write_out_medium_factory is None and t.build_v9_directly is None
    assert t.report_parse_exceptions is False
    assert t.max_parse_exceptions == JAVA_INT_MAX
    assert t.max_saved_parse_exceptions == 0
    assert t.log_parse_exceptions is False
    assert t.push_timeout == 0
    assert t.await_segment_availability_timeout_millis == 0
    assert t.effective_partitions_spec == DynamicPartitionsSpec(max_rows_per_segment=5_000_000, max_total_rows=20_000_000)


def test_every_field_accepted_in_camel_case():
    t = parse(
        {
            "type": "index", "maxRowsPerSegment": 100, "maxTotalRows": 1000, "maxRowsInMemory": 10, "maxBytesInMemory": -1,
            "skipBytesInMemoryOverheadCheck": True, "maxPendingPersists": 2, "numPersistThreads": 3, "maxColumnsToMerge": 5,
            "appendableIndexSpec": {"type": "onheap", "preserveExistingMetrics": True},
            "indexSpec": {"bitmap": {"type": "concise"}}, "indexSpecForIntermediatePersists": {"metricCompression": "none"},
            "forceExtendableShardSpecs": True, "segmentWriteOutMediumFactory": {"type": "offHeapMemory"}, "buildV9Directly": True,
            "maxParseExceptions": 7, "maxSavedParseExceptions": 3, "logParseExceptions": True, "pushTimeout": 60000,
            "awaitSegmentAvailabilityTimeoutMillis": 5,
        }
    )
    assert t.effective_partitions_spec == DynamicPartitionsSpec(max_rows_per_segment=100, max_total_rows=1000)
    assert t.effective_index_spec_for_intermediate_persists.metric_compression == "none"
    assert t.effective_max_bytes_in_memory() is None
    assert (t.max_parse_exceptions, t.max_saved_parse_exceptions, t.push_timeout) == (7, 3, 60000)


def test_deprecated_aliases_fold_into_their_successors():
    t = parse({"targetPartitionSize": 5_000_000, "rowFlushBoundary": 75_000, "publishTimeout": 10})
    assert (t.max_rows_per_segment, t.max_rows_in_memory, t.push_timeout) == (5_000_000, 75_000, 10)
    dumped = t.model_dump()
    assert "targetPartitionSize" not in dumped and "rowFlushBoundary" not in dumped and "publishTimeout" not in dumped
    assert dumped["maxRowsInMemory"] == 75_000
    assert parse(dumped) == t


def test_alias_given_twice_with_different_values():
    assert_spec_error(lambda: parse({"rowFlushBoundary": 5, "maxRowsInMemory": 6}), f"{P}.rowFlushBoundary", 5)
    assert_spec_error(lambda: parse({"targetPartitionSize": 5, "maxRowsPerSegment": 6}), f"{P}.targetPartitionSize", 5)


def test_effective_max_bytes_in_memory():
    assert parse({}).effective_max_bytes_in_memory(total_memory=600) == 100
    assert parse({"maxBytesInMemory": 1234}).effective_max_bytes_in_memory() == 1234
    assert parse({}).effective_max_bytes_in_memory() > 0


# ----------------------------------------------------------------------------------------- partitionsSpec


def test_dynamic_defaults():
    spec = parse({"partitionsSpec": {"type": "dynamic"}}).partitions_spec
    assert spec == DynamicPartitionsSpec() and (spec.max_rows_per_segment, spec.max_total_rows) == (5_000_000, 20_000_000)
    assert not spec.needs_determine_partitions and not spec.is_perfect_rollup


def test_dynamic_explicit_nulls_mean_defaults():
    assert parse({"partitionsSpec": {"type": "dynamic", "maxTotalRows": None}}).partitions_spec == DynamicPartitionsSpec()


@pytest.mark.parametrize("alias", ["targetRowsPerSegment", "targetPartitionSize", "maxRowsPerSegment"])
def test_hashed_target_aliases(alias):
    spec = parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", alias: 1000}}).partitions_spec
    assert spec == HashedPartitionsSpec(target_rows_per_segment=1000)
    assert spec.needs_determine_partitions


def test_hashed_defaults_and_num_shards():
    spec = parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed"}}).partitions_spec
    assert (spec.num_shards, spec.target_rows_per_segment, spec.partition_dimensions, spec.partition_function) == (
        None, 5_000_000, [], "murmur3_32_abs")
    fixed = parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "numShards": 4, "partitionDimensions": ["a"]}})
    assert fixed.partitions_spec.num_shards == 4 and fixed.partitions_spec.target_rows_per_segment is None
    assert not fixed.partitions_spec.needs_determine_partitions


def test_hashed_num_shards_with_target_is_an_error():
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "numShards": 2, "targetRowsPerSegment": 9}}),
        f"{P}.partitionsSpec.numShards",
        2,
    )


def test_hashed_two_target_aliases_is_an_error():
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "targetRowsPerSegment": 9, "maxRowsPerSegment": 9}}),
        f"{P}.partitionsSpec.maxRowsPerSegment",
        9,
    )


def test_hashed_bad_partition_function_and_duplicate_dimension():
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "partitionFunction": "md5"}}),
        f"{P}.partitionsSpec.partitionFunction",
        "md5",
    )
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "partitionDimensions": ["a", "a"]}}),
        f"{P}.partitionsSpec.partitionDimensions[1]",
        "a",
    )


def test_single_dim_accepted_with_its_old_alias():
    spec = parse(
        {"forceGuaranteedRollup": True, "partitionsSpec": {"type": "dimension", "partitionDimension": "page", "targetPartitionSize": 100}}
    ).partitions_spec
    assert isinstance(spec, SingleDimensionPartitionsSpec) and spec.type == "single_dim"
    assert (spec.effective_target_rows_per_segment, spec.effective_max_rows_per_segment, spec.partition_dimensions) == (100, 150, ["page"])
    assert parse({"forceGuaranteedRollup": True, "partitionsSpec": spec.model_dump()}).partitions_spec == spec


def test_range_accepted():
    spec = parse(
        {"forceGuaranteedRollup": True, "partitionsSpec": {"type": "range", "partitionDimensions": ["a", "b"], "maxRowsPerSegment": 10, "assumeGrouped": True}}
    ).partitions_spec
    assert isinstance(spec, DimensionRangePartitionsSpec)
    assert (spec.effective_max_rows_per_segment, spec.effective_target_rows_per_segment, spec.assume_grouped) == (10, 10, True)


def test_range_like_row_count_rules():
    base = {"type": "range", "partitionDimensions": ["a"]}
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": base}), f"{P}.partitionsSpec.targetRowsPerSegment", None
    )
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": {**base, "targetRowsPerSegment": 5, "maxRowsPerSegment": 7}}),
        f"{P}.partitionsSpec.maxRowsPerSegment",
        7,
    )
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "range", "partitionDimensions": [], "targetRowsPerSegment": 5}}),
        f"{P}.partitionsSpec.partitionDimensions",
        [],
    )
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "single_dim", "targetRowsPerSegment": 5}}),
        f"{P}.partitionsSpec.partitionDimension",
        None,
    )


def test_unknown_partitions_spec_type():
    err = assert_spec_error(lambda: parse({"partitionsSpec": {"type": "hash"}}), f"{P}.partitionsSpec.type", "hash")
    assert "dynamic" in err.reason and "range" in err.reason


@pytest.mark.parametrize(
    "data, path, value",
    [
        ({"maxRowsInMemory": 0}, f"{P}.maxRowsInMemory", 0),
        ({"maxRowsPerSegment": -5}, f"{P}.maxRowsPerSegment", -5),
        ({"maxTotalRows": 0}, f"{P}.maxTotalRows", 0),
        ({"partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 0}}, f"{P}.partitionsSpec.maxRowsPerSegment", 0),
        ({"partitionsSpec": {"type": "dynamic", "maxTotalRows": -1}}, f"{P}.partitionsSpec.maxTotalRows", -1),
        ({"forceGuaranteedRollup": True, "numShards": 0}, f"{P}.numShards", 0),
        ({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "numShards": -2}}, f"{P}.partitionsSpec.numShards", -2),
        ({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "single_dim", "partitionDimension": "a", "targetRowsPerSegment": 0}},
         f"{P}.partitionsSpec.targetRowsPerSegment", 0),
        ({"maxBytesInMemory": -2}, f"{P}.maxBytesInMemory", -2),
        ({"maxPendingPersists": -1}, f"{P}.maxPendingPersists", -1),
        ({"maxParseExceptions": -1}, f"{P}.maxParseExceptions", -1),
        ({"maxColumnsToMerge": 1}, f"{P}.maxColumnsToMerge", 1),
        ({"numPersistThreads": 0}, f"{P}.numPersistThreads", 0),
        ({"pushTimeout": -1}, f"{P}.pushTimeout", -1),
    ],
)
def test_negative_or_zero_limits_are_errors(data, path, value):
    assert_spec_error(lambda: parse(data), path, value)


# ----------------------------------------------------------------------------------------- consistency rules


def test_legacy_fields_fold_into_dynamic_without_guaranteed_rollup():
    t = parse({"maxRowsPerSegment": 10, "maxTotalRows": 100})
    assert t.effective_partitions_spec == DynamicPartitionsSpec(max_rows_per_segment=10, max_total_rows=100)


def test_legacy_fields_fold_into_hashed_with_guaranteed_rollup():
    assert parse({"forceGuaranteedRollup": True}).effective_partitions_spec == HashedPartitionsSpec(target_rows_per_segment=5_000_000)
    t = parse({"forceGuaranteedRollup": True, "numShards": 3, "partitionDimensions": ["a"]})
    assert t.effective_partitions_spec == HashedPartitionsSpec(num_shards=3, partition_dimensions=["a"])
    t = parse({"forceGuaranteedRollup": True, "targetPartitionSize": 1000})
    assert t.effective_partitions_spec == HashedPartitionsSpec(target_rows_per_segment=1000)


def test_num_shards_with_target_rows_is_an_error():
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "numShards": 2, "targetPartitionSize": 5}), f"{P}.numShards", 2, "cannot be combined"
    )
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "numShards": 2, "maxRowsPerSegment": 5}), f"{P}.numShards", 2, "cannot be combined"
    )


def test_best_effort_requires_dynamic():
    for kind, extra in [("hashed", {}), ("single_dim", {"partitionDimension": "a", "targetRowsPerSegment": 5}),
                        ("range", {"partitionDimensions": ["a"], "targetRowsPerSegment": 5})]:
        err = assert_spec_error(
            lambda: parse({"partitionsSpec": {"type": kind, **extra}}), f"{P}.partitionsSpec.type", "single_dim" if kind == "single_dim" else kind
        )
        assert "dynamic" in err.reason


def test_guaranteed_rollup_requires_perfect_rollup_spec():
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "dynamic"}}), f"{P}.partitionsSpec.type", "dynamic"
    )


def test_guaranteed_rollup_accepts_hashed_single_dim_and_range():
    for spec in ({"type": "hashed"}, {"type": "single_dim", "partitionDimension": "a", "maxRowsPerSegment": 5},
                 {"type": "range", "partitionDimensions": ["a"], "maxRowsPerSegment": 5}):
        assert parse({"forceGuaranteedRollup": True, "partitionsSpec": spec}).effective_partitions_spec.is_perfect_rollup


def test_guaranteed_rollup_with_extendable_shard_specs_is_an_error():
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "forceExtendableShardSpecs": True}), f"{P}.forceExtendableShardSpecs", True
    )


def test_partitions_spec_wins_over_legacy_fields_which_are_ignored_with_a_warning():
    # Druid's IndexTuningConfig.getPartitionsSpec: a given partitionsSpec is used as is, the top-level fields ignored.
    t = parse({"maxRowsPerSegment": 10, "partitionsSpec": {"type": "dynamic"}})
    assert t.effective_partitions_spec == DynamicPartitionsSpec()
    assert spec_warnings(t, P) == [f"{P}.maxRowsPerSegment: ignored: partitionsSpec is given, and Druid then ignores the deprecated top-level field"]
    t = parse({"forceGuaranteedRollup": True, "maxRowsPerSegment": 5000000, "partitionsSpec": {"type": "hashed", "numShards": 1}})
    assert t.effective_partitions_spec.num_shards == 1 and t.effective_partitions_spec.target_rows_per_segment is None


def test_perfect_rollup_only_fields_are_ignored_under_best_effort_and_max_total_rows_under_perfect():
    assert parse({"numShards": 3}).effective_partitions_spec == DynamicPartitionsSpec()
    assert [w.split(":")[0] for w in spec_warnings(parse({"numShards": 3, "partitionDimensions": ["a"]}), P)] == [
        f"{P}.numShards", f"{P}.partitionDimensions"
    ]
    t = parse({"forceGuaranteedRollup": True, "maxTotalRows": 9})
    assert t.effective_partitions_spec.type == "hashed"
    assert spec_warnings(t, P) == [f"{P}.maxTotalRows: ignored: only applies to best-effort rollup (forceGuaranteedRollup=false)"]


def test_unknown_tuning_key_is_ignored_with_a_warning():
    t = parse({"maxRowInMemory": 5})
    assert t.max_rows_in_memory == parse({}).max_rows_in_memory
    assert spec_warnings(t, P) == [f"{P}.maxRowInMemory: unknown key, ignored (as Druid ignores unknown properties)"]


def test_report_parse_exceptions_forces_fail_fast():
    t = parse({"reportParseExceptions": True, "maxParseExceptions": 100, "maxSavedParseExceptions": 5})
    assert (t.max_parse_exceptions, t.max_saved_parse_exceptions) == (0, 1)
    t = parse({"reportParseExceptions": True})
    assert (t.max_parse_exceptions, t.max_saved_parse_exceptions) == (0, 0)
    assert parse(t.model_dump()) == t


def test_parallel_only_fields():
    t = parse({"type": "index_parallel", "maxNumConcurrentSubTasks": 4, "maxRetry": 1, "splitHintSpec": {"type": "maxSize"}})
    assert t.max_num_concurrent_sub_tasks == 4
    assert parse({"type": "index_parallel", "maxNumSubTasks": 2}).max_num_concurrent_sub_tasks == 2
    # Druid's "index" tuningConfig does not know the parallel fields: unknown properties there, ignored with a warning.
    assert spec_warnings(parse({"maxNumConcurrentSubTasks": 4}), P) == [
        f"{P}.maxNumConcurrentSubTasks: ignored: only applies to tuningConfig type index_parallel"
    ]


def test_bad_type():
    assert_spec_error(lambda: parse({"type": "hadoop"}), f"{P}.type", "hadoop")
    assert_spec_error(lambda: parse({"segmentWriteOutMediumFactory": {"type": "disk"}}), f"{P}.segmentWriteOutMediumFactory.type", "disk")
    assert_spec_error(lambda: parse({"appendableIndexSpec": {"type": "offheap"}}), f"{P}.appendableIndexSpec.type", "offheap")


# ----------------------------------------------------------------------------------------------- indexSpec


def test_index_spec_defaults_and_effective():
    spec = IndexSpec()
    assert (spec.bitmap.type, spec.dimension_compression, spec.metric_compression, spec.long_encoding) == ("roaring", "lz4", "lz4", "longs")
    eff = spec.effective()
    assert eff.bitmap.compress_run_on_serialization is True
    assert eff.string_dictionary_encoding.type == "utf8"
    assert eff.effective() == eff
    assert IndexSpec.parse({"bitmap": {"type": "roaring", "compressRunOnSerialization": True}}).effective() == eff


def test_index_spec_compressions_case_insensitive():
    spec = IndexSpec.parse({"dimensionCompression": "ZSTD", "metricCompression": "None", "longEncoding": "AUTO"})
    assert (spec.dimension_compression, spec.metric_compression, spec.long_encoding) == ("zstd", "none", "auto")
    assert not spec.uses_lzf


def test_index_spec_lzf_accepted_and_flagged():
    assert IndexSpec.parse({"metricCompression": "LZF"}).uses_lzf
    assert IndexSpec.parse({"dimensionCompression": "lzf"}).uses_lzf


def test_index_spec_errors():
    assert_spec_error(lambda: IndexSpec.parse({"dimensionCompression": "none"}, "indexSpec"), "indexSpec.dimensionCompression", "none")
    assert_spec_error(lambda: IndexSpec.parse({"metricCompression": "gzip"}, "indexSpec"), "indexSpec.metricCompression", "gzip")
    assert_spec_error(lambda: IndexSpec.parse({"longEncoding": "delta"}, "indexSpec"), "indexSpec.longEncoding", "delta")
    assert_spec_error(lambda: IndexSpec.parse({"bitmap": {"type": "bitset"}}, "indexSpec"), "indexSpec.bitmap.type", "bitset")
    assert_spec_error(
        lambda: IndexSpec.parse({"stringDictionaryEncoding": {"type": "frontCoded", "bucketSize": 3}}, "indexSpec"),
        "indexSpec.stringDictionaryEncoding.bucketSize",
        3,
    )


def test_front_coded_effective_defaults():
    eff = IndexSpec.parse({"stringDictionaryEncoding": {"type": "frontCoded"}}).effective()
    assert (eff.string_dictionary_encoding.bucket_size, eff.string_dictionary_encoding.format_version) == (4, 1)


def test_nested_spec_details_errors():
    assert_spec_error(
        lambda: IndexSpec.parse({"bitmap": {"type": "concise", "compressRunOnSerialization": True}}, "indexSpec"),
        "indexSpec.bitmap.compressRunOnSerialization",
        True,
    )
    assert_spec_error(
        lambda: IndexSpec.parse({"stringDictionaryEncoding": {"type": "utf8", "bucketSize": 4}}, "indexSpec"),
        "indexSpec.stringDictionaryEncoding.bucketSize",
        4,
    )
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "single_dim", "partitionDimension": "", "maxRowsPerSegment": 5}}),
        f"{P}.partitionsSpec.partitionDimension",
        "",
    )
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "partitionDimensions": ["a", ""]}}),
        f"{P}.partitionsSpec.partitionDimensions[1]",
        "",
    )
    assert_spec_error(
        lambda: parse({"forceGuaranteedRollup": True, "partitionDimensions": ["a", "b", "a"]}), f"{P}.partitionDimensions[2]", "a"
    )
