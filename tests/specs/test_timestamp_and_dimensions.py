"""timestampSpec (named formats, Joda patterns) and dimensionsSpec (types, checks, schemaless discovery)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from druidflow.aggregators import parse_metrics_spec
from druidflow.specs.dimensions import DimensionSchema, DimensionsSpec
from druidflow.specs.timestamp import TimestampSpec, joda_to_strptime, parse_joda
from tests.specs.helpers import assert_spec_error

# ---------------------------------------------------------------------------------------------- timestampSpec


def test_timestamp_defaults():
    ts = TimestampSpec()
    assert (ts.column, ts.format, ts.missing_value, ts.is_pattern, ts.strptime_format()) == ("timestamp", "auto", None, False, None)


@pytest.mark.parametrize("fmt", ["auto", "iso", "posix", "millis", "micro", "nano", "ruby", "MILLIS", "Posix"])
def test_named_formats_case_insensitive(fmt):
    ts = TimestampSpec.parse({"format": fmt})
    assert ts.format == fmt.lower() and not ts.is_pattern


@pytest.mark.parametrize(
    "pattern, fmt, text, expected",
    [
        ("yyyy-MM-dd HH:mm:ss", "%Y-%m-%d %H:%M:%S", "2024-03-05 07:08:09", dt.datetime(2024, 3, 5, 7, 8, 9)),
        ("yyyy-MM-dd'T'HH:mm:ss.SSSZZ", "%Y-%m-%dT%H:%M:%S.%f%z", "2024-03-05T07:08:09.123+01:00",
         dt.datetime(2024, 3, 5, 7, 8, 9, 123000, tzinfo=dt.timezone(dt.timedelta(hours=1)))),
        ("dd/MMM/yyyy:HH:mm:ss Z", "%d/%b/%Y:%H:%M:%S %z", "05/Mar/2024:07:08:09 +0000",
         dt.datetime(2024, 3, 5, 7, 8, 9, tzinfo=dt.timezone.utc)),
        ("EEEE, d MMMM yy h:mm a", "%A, %d %B %y %I:%M %p", "Tuesday, 5 March 24 7:08 PM", dt.datetime(2024, 3, 5, 19, 8)),
        ("yyyyMMdd", "%Y%m%d", "20240305", dt.datetime(2024, 3, 5)),
        ("yyyy-DDD", "%Y-%j", "2024-065", dt.datetime(2024, 3, 5)),
        ("'at' HH 'o''clock' yyyy-MM-dd", "at %H o'clock %Y-%m-%d", "at 07 o'clock 2024-03-05", dt.datetime(2024, 3, 5, 7)),
        ("yyyy-MM-dd '100%'", "%Y-%m-%d 100%%", "2024-03-05 100%", dt.datetime(2024, 3, 5)),
    ],
)
def test_joda_patterns_translate_to_working_strptime_formats(pattern, fmt, text, expected):
    ts = TimestampSpec.parse({"column": "t", "format": pattern})
    assert ts.is_pattern and ts.format == pattern
    assert ts.strptime_format() == fmt == joda_to_strptime(pattern)
    assert dt.datetime.strptime(text, ts.strptime_format()) == expected
    assert ts.has_fractional_seconds == ("S" in pattern)
    # the vectorised Arrow parser agrees with Python's strptime (naive values are UTC)
    aware = expected if expected.tzinfo else expected.replace(tzinfo=dt.timezone.utc)
    expected_ms = int(aware.timestamp() * 1000)
    assert ts.parse_pattern(pa.array([text, "garbage", None])).to_pylist() == [expected_ms, None, None]


def test_parse_joda_fractions_are_truncated_to_milliseconds_and_required():
    values = pa.chunked_array([["2024-01-02 03:04:05.1", "2024-01-02 03:04:05.123456789"], ["2024-01-02 03:04:05", "2024-01-02 03:04:05.12x"]])
    out = parse_joda(values, "yyyy-MM-dd HH:mm:ss.SSS")
    base = 1704164645000
    assert out.to_pylist() == [base + 100, base + 123, None, None]
    assert parse_joda(pa.array(["05,250 2024-01-02 03:04+0100"]), "ss,SSS yyyy-MM-dd HH:mmZ").to_pylist() == [base - 3_600_000 + 250]


def test_parse_pattern_refuses_named_formats():
    with pytest.raises(ValueError):
        TimestampSpec(format="millis").parse_pattern(pa.array(["1"]))


@pytest.mark.parametrize(
    "pattern, reason",
    [
        ("yyyy-qq", "illegal pattern letter 'q'"),
        ("yyyy-ww", "week of week year"),
        ("GGGG yyyy", "era"),
        ("kk:mm", "clock hour of day"),
        ("KK:mm a", "hour of half-day"),
        ("yyyy-MM-dd HH:mm zzz", "time zone name"),
        ("yyyy-MM-dd HH:mm ZZZ", "time zone id"),
        ("yyyy-MM-dd 'T", "unterminated quote"),
        ("", "Joda-Time pattern"),
        ("HH:mm:ss.SSS SSS", "at most one fraction"),
    ],
)
def test_untranslatable_or_invalid_patterns_fail_at_parse(pattern, reason):
    assert_spec_error(
        lambda: TimestampSpec.parse({"column": "t", "format": pattern}, "spec.dataSchema.timestampSpec"),
        "spec.dataSchema.timestampSpec.format",
        pattern,
        reason,
    )


def test_missing_value():
    ts = TimestampSpec.parse({"missingValue": "2024-01-01T00:00:00Z"})
    assert ts.missing_value_ms == 1704067200000
    assert_spec_error(lambda: TimestampSpec.parse({"missingValue": "yesterday"}, "ts"), "ts.missingValue", "yesterday")


def test_timestamp_column_must_not_be_empty():
    assert_spec_error(lambda: TimestampSpec.parse({"column": ""}, "ts"), "ts.column", "")


# ---------------------------------------------------------------------------------------------- dimensionsSpec


def test_dimensions_names_and_objects_normalise():
    spec = DimensionsSpec.parse(
        {"dimensions": ["page", {"type": "long", "name": "added"}, {"name": "tags", "multiValueHandling": "SORTED_SET"},
                        {"type": "double", "name": "lat"}, {"type": "float", "name": "f", "createBitmapIndex": False}]}
    )
    assert spec.dimension_names == ["page", "added", "tags", "lat", "f"]
    schemas = spec.dimension_schemas
    assert all(isinstance(d, DimensionSchema) for d in schemas)
    assert [d.type for d in schemas] == ["string", "long", "string", "double", "float"]
    assert schemas[0].effective_multi_value_handling == "sorted_array" and schemas[2].effective_multi_value_handling == "sorted_set"
    assert schemas[0].has_bitmap_index and not schemas[1].has_bitmap_index
    assert not spec.is_schemaless
    # bare names stay bare names in the dump, and the dump parses back equal
    assert spec.model_dump()["dimensions"][0] == "page"
    assert DimensionsSpec.parse(spec.model_dump()) == spec


@pytest.mark.parametrize("mvh", ["sorted_array", "sorted_set", "array", "ARRAY"])
def test_multi_value_handling_values(mvh):
    assert DimensionsSpec.parse({"dimensions": [{"name": "t", "multiValueHandling": mvh}]}).dimension_schemas[0].multi_value_handling == mvh.lower()


P = "spec.dataSchema.dimensionsSpec"


@pytest.mark.parametrize(
    "data, path, value",
    [
        ({"dimensions": ["a", "b", "a"]}, f"{P}.dimensions[2]", "a"),
        ({"dimensions": ["a", {"type": "long", "name": "a"}]}, f"{P}.dimensions[1]", "a"),
        ({"dimensions": ["__time"]}, f"{P}.dimensions[0]", "__time"),
        ({"dimensions": [{"type": "long", "name": "__time"}]}, f"{P}.dimensions[0].name", "__time"),
        ({"dimensions": [""]}, f"{P}.dimensions[0]", ""),
        ({"dimensions": [{"type": "json", "name": "j"}]}, f"{P}.dimensions[0].type", "json"),
        ({"dimensions": [{"type": "auto", "name": "j"}]}, f"{P}.dimensions[0].type", "auto"),
        ({"dimensions": [{"name": "t", "multiValueHandling": "sorted"}]}, f"{P}.dimensions[0].multiValueHandling", "sorted"),
        ({"dimensions": [7]}, f"{P}.dimensions[0]", 7),
        ({"dimensions": ["a"], "dimensionExclusions": ["a"]}, f"{P}.dimensions[0]", "a"),
        ({"spatialDimensions": [{"dimName": "c", "dims": ["x", "y"]}]}, f"{P}.spatialDimensions", [{"dimName": "c", "dims": ["x", "y"]}]),
    ],
)
def test_dimensions_errors(data, path, value):
    assert_spec_error(lambda: DimensionsSpec.parse(data, P), path, value)


def test_schemaless_discovery_follows_druids_rule():
    spec = DimensionsSpec.parse({"dimensionExclusions": ["secret"]})
    metrics = parse_metrics_spec(
        [{"type": "count", "name": "count"}, {"type": "doubleSum", "name": "added", "fieldName": "delta_plus"},
         {"type": "longFirst", "name": "first_v", "fieldName": "v", "timeColumn": "ts2"}]
    )
    columns = ["ts", "page", "secret", "delta_plus", "added", "count", "user", "v", "ts2", "__time", "page"]
    found = spec.discover(columns, "ts", metrics)
    # minus exclusions, the timestamp column, aggregator fieldNames (and time columns), aggregator names; input order
    assert [d.name for d in found] == ["page", "user"]
    assert all(d.type == "string" for d in found)


def test_explicit_dimensions_are_not_extended_unless_asked():
    spec = DimensionsSpec.parse({"dimensions": ["b"]})
    assert [d.name for d in spec.discover(["a", "b", "c"], "t")] == ["b"]
    spec = DimensionsSpec.parse({"dimensions": ["b"], "includeAllDimensions": True, "dimensionExclusions": ["c"]})
    assert [d.name for d in spec.discover(["a", "b", "c", "d", "t"], "t")] == ["b", "a", "d"]


def test_typed_discovery_with_schema_discovery():
    spec = DimensionsSpec.parse({"useSchemaDiscovery": True})
    schema = pa.schema([("t", pa.string()), ("n", pa.int32()), ("x", pa.float64()), ("f", pa.float32()), ("s", pa.string()), ("b", pa.bool_())])
    assert [(d.name, d.type) for d in spec.discover(schema, "t")] == [("n", "long"), ("x", "double"), ("f", "float"), ("s", "string"), ("b", "long")]
    # without useSchemaDiscovery everything discovered is a string
    assert {d.type for d in DimensionsSpec().discover(schema, "t")} == {"string"}
