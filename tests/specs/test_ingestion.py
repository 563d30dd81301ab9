"""The index task's spec: classic and modern forms normalised into one shape, granularitySpec, ioConfig rules."""

from __future__ import annotations

import copy

import pytest

from druidflow.granularity import DAY, HOUR, NONE, Granularity
from druidflow.intervals import Interval
from druidflow.specs.dimensions import DimensionsSpec
from druidflow.specs.ingestion import DataSchema, GranularitySpec, IndexIngestionSpec, IngestionMode
from druidflow.specs.io import (
    CsvInputFormat,
    DruidInputSource,
    HttpInputSource,
    InlineInputSource,
    JsonInputFormat,
    LocalInputSource,
    ParquetInputFormat,
    S3InputSource,
    TsvInputFormat,
)
from druidflow.specs.tasks import IndexTask, parse_task
from druidflow.specs.timestamp import TimestampSpec
from druidflow.transforms import TransformSpec
from tests.specs.helpers import assert_spec_error

# The index task example of the seed's documentation (Druid 0.12 native batch docs), as users wrote it.
CLASSIC_WIKIPEDIA = {
    "type": "index",
    "spec": {
        "dataSchema": {
            "dataSource": "wikipedia",
            "parser": {
                "type": "string",
                "parseSpec": {
                    "format": "json",
                    "timestampSpec": {"column": "timestamp", "format": "auto"},
                    "dimensionsSpec": {
                        "dimensions": ["page", "language", "user", "unpatrolled", "newPage", "robot", "anonymous",
                                       "namespace", "continent", "country", "region", "city"],
                        "dimensionExclusions": [],
                        "spatialDimensions": [],
                    },
                },
            },
            "metricsSpec": [
                {"type": "count", "name": "count"},
                {"type": "doubleSum", "name": "added", "fieldName": "added"},
                {"type": "doubleSum", "name": "deleted", "fieldName": "deleted"},
                {"type": "doubleSum", "name": "delta", "fieldName": "delta"},
            ],
            "granularitySpec": {
                "type": "uniform",
                "segmentGranularity": "DAY",
                "queryGranularity": "NONE",
                "intervals": ["2013-08-31/2013-09-01"],
            },
        },
        "ioConfig": {
            "type": "index",
            "firehose": {"type": "local", "baseDir": "examples/indexing/", "filter": "wikipedia_data.json"},
        },
        "tuningConfig": {"type": "index", "targetPartitionSize": 5000000, "maxRowsInMemory": 75000},
    },
}

MODERN_EDITS = {
    "type": "index",
    "id": "index_edits_2024",
    "spec": {
        "dataSchema": {
            "dataSource": "edits",
            "timestampSpec": {"column": "ts", "format": "iso"},
            "dimensionsSpec": {"dimensions": ["channel", {"type": "long", "name": "namespace_id"}, {"name": "tags", "multiValueHandling": "array"}]},
            "metricsSpec": [
                {"type": "count", "name": "count"},
                {"type": "longSum", "name": "added", "fieldName": "added"},
                {"type": "doubleMax", "name": "max_delta", "fieldName": "delta"},
            ],
            "granularitySpec": {
                "segmentGranularity": "HOUR",
                "queryGranularity": {"type": "period", "period": "PT15M", "timeZone": "America/Los_Angeles"},
                "rollup": True,
                "intervals": ["2024-01-01/2024-01-02"],
            },
            "transformSpec": {
                "transforms": [{"type": "expression", "name": "channel", "expression": "concat('#', channel)"}],
                "filter": {"type": "selector", "dimension": "channel", "value": "#en"},
            },
        },
        "ioConfig": {
            "type": "index",
            "inputSource": {"type": "inline", "data": "ts,channel,namespace_id,tags,added,delta\n"},
            "inputFormat": {"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"},
            "appendToExisting": False,
        },
        "tuningConfig": {"type": "index", "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 1000}},
    },
    "context": {"priority": 60},
}


def changed(base: dict, changes: dict) -> dict:
    """A copy of ``base`` with each ``a__b__c=value`` set at that path (``None`` removes the key)."""
    spec = copy.deepcopy(base)
    for path, value in changes.items():
        node = spec
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        if value is None:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    return spec


def classic(**changes):
    return changed(CLASSIC_WIKIPEDIA, changes)


def modern(**changes):
    return changed(MODERN_EDITS, changes)


# --------------------------------------------------------------------------------------------- the two forms


def test_classic_seed_spec_is_normalised_into_the_modern_shape():
    task = parse_task(CLASSIC_WIKIPEDIA)
    assert isinstance(task, IndexTask)
    schema, io, tuning = task.spec.data_schema, task.spec.io_config, task.spec.tuning_config
    assert schema.data_source == "wikipedia" == task.data_source
    assert schema.timestamp_spec == TimestampSpec(column="timestamp", format="auto")
    assert schema.dimensions_spec.dimension_names[:3] == ["page", "language", "user"] and len(schema.dimensions_spec.dimension_names) == 12
    assert [(m.type, m.name) for m in schema.metrics_spec] == [("count", "count"), ("doubleSum", "added"), ("doubleSum", "deleted"), ("doubleSum", "delta")]
    gran = schema.granularity_spec
    assert (gran.segment_granularity, gran.query_granularity, gran.rollup) == (DAY, NONE, True)
    assert gran.intervals == [Interval.parse("2013-08-31/2013-09-01")]
    assert schema.transform_spec == TransformSpec()
    assert io.input_source == LocalInputSource(base_dir="examples/indexing/", filter="wikipedia_data.json")
    assert isinstance(io.input_format, JsonInputFormat)
    assert (tuning.max_rows_per_segment, tuning.max_rows_in_memory) == (5_000_000, 75_000)
    assert task.ingestion_mode is IngestionMode.REPLACE_LEGACY


def test_classic_dump_is_modern_and_round_trips():
    task = parse_task(CLASSIC_WIKIPEDIA)
    dumped = task.model_dump()
    assert "parser" not in dumped["spec"]["dataSchema"] and "firehose" not in dumped["spec"]["ioConfig"]
    assert dumped["spec"]["dataSchema"]["timestampSpec"] == {"column": "timestamp", "format": "auto"}
    assert dumped["spec"]["ioConfig"]["inputSource"] == {"type": "local", "baseDir": "examples/indexing/", "filter": "wikipedia_data.json"}
    assert dumped["spec"]["ioConfig"]["inputFormat"] == {"type": "json"}
    again = parse_task(dumped)
    assert again == task
    assert parse_task(task.model_dump_json()) == task


def test_modern_spec():
    task = parse_task(MODERN_EDITS)
    schema, io = task.spec.data_schema, task.spec.io_config
    assert task.task_id == "index_edits_2024" and task.priority == 60
    assert schema.timestamp_spec.format == "iso"
    assert [(d.type, d.name) for d in schema.dimensions_spec.dimension_schemas] == [("string", "channel"), ("long", "namespace_id"), ("string", "tags")]
    gran = schema.granularity_spec
    assert gran.segment_granularity == HOUR
    assert gran.query_granularity == Granularity.parse({"type": "period", "period": "PT15M", "timeZone": "America/Los_Angeles"})
    assert len(schema.transform_spec.transforms) == 1
    assert isinstance(io.input_source, InlineInputSource)
    assert isinstance(io.input_format, CsvInputFormat) and io.input_format.list_delimiter == "|"
    assert task.spec.tuning_config.effective_partitions_spec.max_rows_per_segment == 1000
    assert parse_task(task.model_dump()) == task


def test_both_forms_give_the_same_model():
    modern_form = {
        "type": "index",
        "id": "same",
        "spec": {
            "dataSchema": {
                "dataSource": "wikipedia",
                "timestampSpec": {"column": "timestamp", "format": "auto"},
                "dimensionsSpec": CLASSIC_WIKIPEDIA["spec"]["dataSchema"]["parser"]["parseSpec"]["dimensionsSpec"],
                "metricsSpec": CLASSIC_WIKIPEDIA["spec"]["dataSchema"]["metricsSpec"],
                "granularitySpec": CLASSIC_WIKIPEDIA["spec"]["dataSchema"]["granularitySpec"],
            },
            "ioConfig": {
                "type": "index",
                "inputSource": {"type": "local", "baseDir": "examples/indexing/", "filter": "wikipedia_data.json"},
                "inputFormat": {"type": "json"},
            },
            "tuningConfig": {"type": "index", "maxRowsPerSegment": 5000000, "maxRowsInMemory": 75000},
        },
    }
    assert parse_task(modern_form) == parse_task({**CLASSIC_WIKIPEDIA, "id": "same"})


def test_tuning_config_may_be_omitted():
    task = parse_task(classic(spec__tuningConfig=None))
    assert task.spec.tuning_config.max_rows_in_memory == 1_000_000


# ------------------------------------------------------------------------------------------- classic formats


def _parse_spec(**fields):
    return classic(spec__dataSchema__parser__parseSpec={"timestampSpec": {"column": "ts"}, **fields})


def test_classic_csv():
    task = parse_task(_parse_spec(format="csv", columns=["ts", "page", "added"]))
    fmt = task.spec.io_config.input_format
    assert isinstance(fmt, CsvInputFormat) and fmt.columns == ["ts", "page", "added"]
    assert fmt.effective_list_delimiter == "\u0001"  # Ctrl-A, classic csv's default
    assert task.spec.data_schema.dimensions_spec.is_schemaless
    fmt = parse_task(_parse_spec(format="csv", hasHeaderRow=True, skipHeaderRows=2, listDelimiter=";")).spec.io_config.input_format
    assert fmt.uses_header and fmt.skip_header_rows == 2 and fmt.list_delimiter == ";"


def test_classic_format_defaults_to_tsv():
    fmt = parse_task(_parse_spec(columns=["ts", "page"])).spec.io_config.input_format
    assert isinstance(fmt, TsvInputFormat) and fmt.delimiter == "\t"
    fmt = parse_task(_parse_spec(format="tsv", columns=["ts", "page"], delimiter="|", listDelimiter=",")).spec.io_config.input_format
    assert (fmt.delimiter, fmt.list_delimiter) == ("|", ",")


def test_classic_json_flatten_spec():
    flatten = {"useFieldDiscovery": True, "fields": [{"type": "path", "name": "city", "expr": "$.geo.city"}]}
    fmt = parse_task(_parse_spec(format="json", flattenSpec=flatten)).spec.io_config.input_format
    assert isinstance(fmt, JsonInputFormat) and fmt.flatten_spec.fields[0].name == "city"


def test_classic_parquet_parser():
    spec = classic(
        spec__dataSchema__parser={"type": "parquet", "binaryAsString": True, "parseSpec": {"format": "timeAndDims", "timestampSpec": {"column": "ts"}}}
    )
    fmt = parse_task(spec).spec.io_config.input_format
    assert isinstance(fmt, ParquetInputFormat) and fmt.binary_as_string


def test_classic_time_and_dims_with_ingest_segment_firehose():
    spec = classic(
        spec__dataSchema__parser__parseSpec={"format": "timeAndDims", "timestampSpec": {"column": "__time", "format": "millis"}},
        spec__ioConfig__firehose={"type": "ingestSegment", "dataSource": "wikipedia", "interval": "2013-08-31/2013-09-01"},
    )
    io = parse_task(spec).spec.io_config
    assert isinstance(io.input_source, DruidInputSource) and io.input_format is None


@pytest.mark.parametrize(
    "firehose, expected",
    [
        ({"type": "http", "uris": ["https://example.com/a.json"]}, HttpInputSource(uris=["https://example.com/a.json"])),
        ({"type": "static-s3", "prefixes": ["s3://bucket/path/"]}, S3InputSource(prefixes=["s3://bucket/path/"])),
        ({"type": "inline", "data": '{"timestamp": "2013-08-31"}'}, InlineInputSource(data='{"timestamp": "2013-08-31"}')),
    ],
)
def test_classic_firehoses_become_input_sources(firehose, expected):
    assert parse_task(classic(spec__ioConfig__firehose=firehose)).spec.io_config.input_source == expected


D = "spec.dataSchema"
PS = "spec.dataSchema.parser.parseSpec"


@pytest.mark.parametrize(
    "spec, path, value",
    [
        (_parse_spec(format="jsonLowercase"), f"{PS}.format", "jsonLowercase"),
        (_parse_spec(format="regex"), f"{PS}.format", "regex"),
        (_parse_spec(format="csv"), f"{PS}.columns", None),  # csv needs columns (or a header row)
        (_parse_spec(format="tsv", columns=["a", "b"], delimiter="::"), f"{PS}.delimiter", "::"),
        (classic(spec__dataSchema__parser__parseSpec={"format": "json"}), f"{PS}.timestampSpec", None),
        (classic(spec__dataSchema__parser__parseSpec={"format": "json", "timestampSpec": {"column": "t", "format": "yyyy-ww"}}),
         f"{PS}.timestampSpec.format", "yyyy-ww"),
        (classic(spec__dataSchema__parser__parseSpec={"format": "json", "timestampSpec": {"column": "t"}, "dimensionsSpec": {"dimensions": ["a", "a"]}}),
         f"{PS}.dimensionsSpec.dimensions[1]", "a"),
        (classic(spec__dataSchema__parser={"type": "avro_stream", "parseSpec": {}}), f"{D}.parser.type", "avro_stream"),
        (classic(spec__dataSchema__parser={"type": "string"}), f"{D}.parser.parseSpec", None),
        (classic(spec__dataSchema__parser={"type": "string", "parseSpec": {"timestampSpec": {}}, "encoding": "ISO-8859-1"}), f"{D}.parser.encoding", "ISO-8859-1"),
        (classic(spec__ioConfig__firehose={"type": "local", "baseDir": "x"}), "spec.ioConfig.firehose.filter", None),
        (classic(spec__ioConfig__firehose={"type": "kafka"}), "spec.ioConfig.firehose.type", "kafka"),
        (classic(spec__dataSchema__timestampSpec={"column": "t"}), f"{D}.timestampSpec", {"column": "t"}),
        (classic(spec__dataSchema__parser__parseSpec={"format": "timeAndDims", "timestampSpec": {"column": "t"}}), f"{PS}.format", "timeAndDims"),
    ],
)
def test_classic_errors_name_the_classic_path(spec, path, value):
    err = assert_spec_error(lambda: parse_task(spec), path)
    if value is not None:
        assert err.value == value and repr(value)[:40] in str(err)


def test_firehose_and_input_source_together():
    spec = classic(spec__ioConfig__inputSource={"type": "inline", "data": "x"})
    assert_spec_error(lambda: parse_task(spec), "spec.dataSchema.parser")
    spec = modern(spec__ioConfig__firehose={"type": "inline", "data": "x"})
    assert_spec_error(lambda: parse_task(spec), "spec.ioConfig.firehose", {"type": "inline", "data": "x"}, "not both")
    spec = modern(spec__ioConfig__firehose={"type": "inline", "data": "x"}, spec__ioConfig__inputSource=None)
    assert_spec_error(lambda: parse_task(spec), "spec.ioConfig.firehose", {"type": "inline", "data": "x"}, "needs dataSchema.parser")


def test_parser_without_firehose_and_parser_with_input_format():
    spec = modern(spec__dataSchema__parser=CLASSIC_WIKIPEDIA["spec"]["dataSchema"]["parser"])
    del spec["spec"]["dataSchema"]["timestampSpec"], spec["spec"]["dataSchema"]["dimensionsSpec"]
    assert_spec_error(lambda: parse_task(spec), "spec.dataSchema.parser", reason="inputSource")
    spec = classic(spec__ioConfig__inputFormat={"type": "json"})
    assert_spec_error(lambda: parse_task(spec), "spec.ioConfig.inputFormat", {"type": "json"})


def test_data_schema_alone_refuses_the_classic_parser():
    assert_spec_error(
        lambda: DataSchema.parse(CLASSIC_WIKIPEDIA["spec"]["dataSchema"], "dataSchema"), "dataSchema.parser", reason="whole index task"
    )


# --------------------------------------------------------------------------------------------- granularitySpec


def test_granularity_spec_defaults():
    g = GranularitySpec()
    assert (g.type, g.segment_granularity, g.query_granularity, g.rollup, g.intervals) == ("uniform", DAY, NONE, True, None)
    assert g.bucket_intervals() is None and g.input_intervals() is None
    assert GranularitySpec.parse({"intervals": []}).intervals is None


@pytest.mark.parametrize(
    "name",
    ["NONE", "SECOND", "MINUTE", "FIVE_MINUTE", "TEN_MINUTE", "FIFTEEN_MINUTE", "THIRTY_MINUTE", "HOUR", "SIX_HOUR", "DAY", "WEEK",
     "MONTH", "QUARTER", "YEAR", "ALL", "day"],
)
def test_query_granularity_names(name):
    assert GranularitySpec.parse({"queryGranularity": name}).query_granularity == Granularity.parse(name)


def test_intervals_expand_outward_to_whole_buckets():
    g = GranularitySpec.parse({"segmentGranularity": "DAY", "intervals": ["2024-01-01T05:00/2024-01-03T01:00", "2024-01-02/2024-01-03"]})
    assert [str(i) for i in g.bucket_intervals()] == [
        "2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z",
        "2024-01-02T00:00:00.000Z/2024-01-03T00:00:00.000Z",
        "2024-01-03T00:00:00.000Z/2024-01-04T00:00:00.000Z",
    ]
    assert [str(i) for i in g.input_intervals()] == ["2024-01-01T05:00:00.000Z/2024-01-03T01:00:00.000Z"]
    month = GranularitySpec.parse({"segmentGranularity": "MONTH", "intervals": ["2024-01-31/2024-02-02"]})
    assert [str(i) for i in month.bucket_intervals()] == [
        "2024-01-01T00:00:00.000Z/2024-02-01T00:00:00.000Z",
        "2024-02-01T00:00:00.000Z/2024-03-01T00:00:00.000Z",
    ]


def test_arbitrary_granularity_spec():
    g = GranularitySpec.parse({"type": "arbitrary", "intervals": ["2024-01-03/2024-01-05", "2024-01-01/2024-01-02"]})
    assert g.segment_granularity is None
    assert [str(i) for i in g.bucket_intervals()] == [
        "2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z",
        "2024-01-03T00:00:00.000Z/2024-01-05T00:00:00.000Z",
    ]
    assert GranularitySpec.parse(g.model_dump()) == g


G = "spec.dataSchema.granularitySpec"


@pytest.mark.parametrize(
    "granularity_spec, path, value",
    [
        ({"segmentGranularity": "FORTNIGHT"}, f"{G}.segmentGranularity", "FORTNIGHT"),
        ({"queryGranularity": "SOMETIMES"}, f"{G}.queryGranularity", "SOMETIMES"),
        ({"queryGranularity": {"type": "period", "period": "PT1H", "timeZone": "Mars/Olympus"}}, f"{G}.queryGranularity",
         {"type": "period", "period": "PT1H", "timeZone": "Mars/Olympus"}),
        ({"type": "daily"}, f"{G}.type", "daily"),
        ({"intervals": ["2024-01-01/2024-01-01"]}, f"{G}.intervals[0]", "2024-01-01T00:00:00.000Z/2024-01-01T00:00:00.000Z"),
        ({"intervals": ["2024-01-02/2024-01-01"]}, f"{G}.intervals[0]", "2024-01-02/2024-01-01"),
        ({"intervals": "2024-01-01/2024-01-02"}, f"{G}.intervals", "2024-01-01/2024-01-02"),
        ({"type": "arbitrary"}, f"{G}.intervals", None),
        ({"type": "arbitrary", "segmentGranularity": "DAY", "intervals": ["2024-01-01/P1D"]}, f"{G}.segmentGranularity", "DAY"),
        ({"type": "arbitrary", "intervals": ["2024-01-01/P2D", "2024-01-02/P1D"]}, f"{G}.intervals",
         ["2024-01-01T00:00:00.000Z/2024-01-03T00:00:00.000Z", "2024-01-02T00:00:00.000Z/2024-01-03T00:00:00.000Z"]),
        ({"segmentGranularity": "SECOND", "intervals": ["2000-01-01/2030-01-01"]}, f"{G}.intervals", ["2000-01-01T00:00:00.000Z/2030-01-01T00:00:00.000Z"]),
        ({"segmentGranularity": "NONE", "intervals": ["2024-01-01/P1D"]}, f"{G}.intervals", ["2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z"]),
        ({"rollup": "maybe"}, f"{G}.rollup", "maybe"),
    ],
)
def test_granularity_spec_errors(granularity_spec, path, value):
    err = assert_spec_error(lambda: parse_task(modern(spec__dataSchema__granularitySpec=granularity_spec)), path)
    if value is not None:
        assert err.value == value and repr(value)[:40] in str(err)


# ------------------------------------------------------------------------------------------------ dataSchema


@pytest.mark.parametrize(
    "change, path, value",
    [
        ({"spec__dataSchema__metricsSpec": [{"type": "count", "name": "channel"}]}, f"{D}.metricsSpec[0].name", "channel"),
        ({"spec__dataSchema__metricsSpec": [{"type": "count", "name": "c"}, {"type": "longSum", "name": "c", "fieldName": "x"}]},
         f"{D}.metricsSpec[1].name", "c"),
        ({"spec__dataSchema__metricsSpec": [{"type": "count", "name": "__time"}]}, f"{D}.metricsSpec[0].name", "__time"),
        ({"spec__dataSchema__metricsSpec": [{"type": "KllDoublesSketch", "name": "u", "fieldName": "user"}]}, f"{D}.metricsSpec[0].type", "KllDoublesSketch"),
        ({"spec__dataSchema__dataSource": "a/b"}, f"{D}.dataSource", "a/b"),
        ({"spec__dataSchema__dataSource": ""}, f"{D}.dataSource", ""),
        ({"spec__dataSchema__dataSource": ".hidden"}, f"{D}.dataSource", ".hidden"),
        ({"spec__dataSchema__dataSource": "tab\there"}, f"{D}.dataSource", "tab\there"),
        ({"spec__dataSchema__timestampSpec": None}, f"{D}.timestampSpec", None),
        ({"spec__dataSchema__timestampSpec": {"column": "ts", "format": "QQ"}}, f"{D}.timestampSpec.format", "QQ"),
        ({"spec__dataSchema__dimensionsSpec": {"dimensions": ["__time"]}}, f"{D}.dimensionsSpec.dimensions[0]", "__time"),
    ],
)
def test_data_schema_errors(change, path, value):
    assert_spec_error(lambda: parse_task(modern(**change)), path, value)


def test_schemaless_data_schema_discovers_from_input_columns():
    task = parse_task(modern(spec__dataSchema__dimensionsSpec={"dimensionExclusions": ["tags"]}))
    dims = task.spec.data_schema.dimensions_for(["ts", "channel", "tags", "added", "delta", "namespace_id", "count"])
    assert [d.name for d in dims] == ["channel", "namespace_id"]
    assert task.spec.data_schema.dimensions_spec == DimensionsSpec(dimension_exclusions=["tags"])


# -------------------------------------------------------------------------------------------------- ioConfig


def test_ingestion_modes():
    assert parse_task(modern()).ingestion_mode is IngestionMode.REPLACE_LEGACY
    assert parse_task(modern(spec__ioConfig__dropExisting=True)).ingestion_mode is IngestionMode.REPLACE
    assert parse_task(modern(spec__ioConfig__appendToExisting=True)).ingestion_mode is IngestionMode.APPEND


def test_append_with_drop_existing_is_an_error():
    assert_spec_error(
        lambda: parse_task(modern(spec__ioConfig__appendToExisting=True, spec__ioConfig__dropExisting=True)),
        "spec.ioConfig.dropExisting",
        True,
        "appendToExisting",
    )


def test_drop_existing_needs_intervals():
    spec = modern(spec__ioConfig__dropExisting=True)
    del spec["spec"]["dataSchema"]["granularitySpec"]["intervals"]
    assert_spec_error(lambda: parse_task(spec), "spec.ioConfig.dropExisting", True, "intervals")


def test_guaranteed_rollup_with_append_is_an_error():
    spec = modern(
        spec__ioConfig__appendToExisting=True,
        spec__tuningConfig={"type": "index", "forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "numShards": 2}},
    )
    assert_spec_error(lambda: parse_task(spec), "spec.ioConfig.appendToExisting", True, "forceGuaranteedRollup")


def test_input_format_required_for_file_like_sources():
    assert_spec_error(lambda: parse_task(modern(spec__ioConfig__inputFormat=None)), "spec.ioConfig.inputFormat", None, "'inline'")
    druid = parse_task(
        modern(spec__ioConfig__inputFormat=None, spec__ioConfig__inputSource={"type": "druid", "dataSource": "edits", "interval": "2024-01-01/P1D"})
    )
    assert isinstance(druid.spec.io_config.input_source, DruidInputSource)


@pytest.mark.parametrize(
    "io_change, path, value",
    [
        ({"spec__ioConfig__inputSource": {"type": "hdfs", "paths": "/x"}}, "spec.ioConfig.inputSource.type", "hdfs"),
        ({"spec__ioConfig__inputSource": {"type": "s3"}}, "spec.ioConfig.inputSource", {"type": "s3"}),
        ({"spec__ioConfig__inputFormat": {"type": "orc"}}, "spec.ioConfig.inputFormat.type", "orc"),
        ({"spec__ioConfig__inputFormat": {"type": "tsv", "columns": ["a"], "delimiter": "ab"}}, "spec.ioConfig.inputFormat.delimiter", "ab"),
        ({"spec__ioConfig__type": "hadoop"}, "spec.ioConfig.type", "hadoop"),
        ({"spec__ioConfig__appendToExisting": "perhaps"}, "spec.ioConfig.appendToExisting", "perhaps"),
    ],
)
def test_io_config_errors(io_change, path, value):
    assert_spec_error(lambda: parse_task(modern(**io_change)), path, value)


def test_ingestion_spec_parses_on_its_own():
    spec = IndexIngestionSpec.parse(CLASSIC_WIKIPEDIA["spec"], "spec")
    assert spec.io_config.input_source.type == "local"
    assert_spec_error(
        lambda: IndexIngestionSpec.parse(classic(spec__dataSchema__parser__parseSpec__format="xml")["spec"], "spec"),
        "spec.dataSchema.parser.parseSpec.format",
        "xml",
    )


def test_more_classic_parser_errors():
    assert_spec_error(lambda: parse_task(classic(spec__dataSchema__parser="json")), "spec.dataSchema.parser", "json")
    assert_spec_error(
        lambda: parse_task(classic(spec__dataSchema__parser={"type": "parquet", "parseSpec": {"format": "csv", "timestampSpec": {"column": "t"}}})),
        "spec.dataSchema.parser.parseSpec.format",
        "csv",
    )
    assert_spec_error(
        lambda: parse_task(classic(spec__dataSchema__parser={"type": "string", "parseSpec": "json"})), "spec.dataSchema.parser.parseSpec", "json"
    )
