"""Input source, input format and firehose models: Druid's JSON in, clear errors out."""

from __future__ import annotations

import pytest

from druidflow.exceptions import InputError, SpecError
from druidflow.specs.field_paths import parse_json_path
from druidflow.specs.firehoses import (
    HttpFirehose,
    IngestSegmentFirehose,
    InlineFirehose,
    LocalFirehose,
    StaticS3Firehose,
)
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
    parse_firehose,
    parse_input_format,
    parse_input_source,
    resolve_password,
)


def spec_error(parse, data) -> SpecError:
    with pytest.raises(SpecError) as err:
        parse(data)
    return err.value


# ---------------------------------------------------------------------------------------------- input sources


def test_every_input_source_type_parses_from_druid_json():
    assert isinstance(parse_input_source({"type": "local", "baseDir": "/d", "filter": "*.json"}), LocalInputSource)
    assert parse_input_source({"type": "local", "files": ["/a.csv"]}).files == ["/a.csv"]
    assert parse_input_source({"type": "inline", "data": "x"}) == InlineInputSource(data="x")
    http = parse_input_source(
        {
            "type": "http",
            "uris": ["https://h/a.json"],
            "httpAuthenticationUsername": "u",
            "httpAuthenticationPassword": {"type": "default", "password": "p"},
        }
    )
    assert isinstance(http, HttpInputSource) and resolve_password(http.http_authentication_password) == "p"
    s3 = parse_input_source(
        {
            "type": "s3",
            "objects": [{"bucket": "b", "path": "k/x.json"}],
            "objectGlob": "**.json",
            "properties": {"accessKeyId": "a", "secretAccessKey": {"type": "environment", "variable": "DF_SECRET"}},
            "endpointConfig": {"url": "http://minio:9000", "signingRegion": "eu-west-1"},
            "clientConfig": {"enablePathStyleAccess": True, "protocol": "http"},
            "proxyConfig": {"host": "proxy", "port": 3128},
        }
    )
    assert isinstance(s3, S3InputSource) and s3.objects[0].path == "k/x.json"
    assert s3.endpoint_config.signing_region == "eu-west-1"
    druid = parse_input_source({"type": "druid", "dataSource": "wiki", "interval": "2024-01-01/P1D"})
    assert isinstance(druid, DruidInputSource)


def test_round_trip_dumps_druid_camel_case():
    spec = {"type": "http", "uris": ["http://h/x"], "httpAuthenticationUsername": "u"}
    assert parse_input_source(spec).model_dump() == spec


@pytest.mark.parametrize(
    "data, path, fragment",
    [
        ({"type": "local", "baseDir": "/d"}, "inputSource", "filter is required"),
        ({"type": "local"}, "inputSource", "at least one of baseDir or files"),
        ({"type": "inline", "data": ""}, "inputSource", "at least 1"),
        ({"type": "http", "uris": []}, "inputSource", "at least 1"),
        ({"type": "http", "uris": ["file:///etc/passwd"]}, "inputSource", "http:// or https://"),
        ({"type": "s3"}, "inputSource", "none is set"),
        ({"type": "s3", "uris": ["s3://b/k"], "objects": [{"bucket": "b", "path": "k"}]}, "inputSource", "uris and objects"),
        ({"type": "s3", "uris": ["s3://bucket-only"]}, "inputSource", "names no object"),
        ({"type": "s3", "prefixes": ["gs://b/p"]}, "inputSource", "s3://"),
        ({"type": "s3", "prefixes": ["s3://b/"], "properties": {"accessKeyId": "a"}}, "inputSource", "together"),
        ({"type": "druid", "dataSource": "w"}, "inputSource", "exactly one of interval or segments"),
        ({"type": "druid", "dataSource": "w", "interval": "nope"}, "inputSource", "ISO-8601 interval"),
        ({"type": "hdfs", "paths": "/x"}, "inputSource", "does not match"),
    ],
)
def test_bad_input_sources_name_the_field_and_value(data, path, fragment):
    err = spec_error(parse_input_source, data)
    assert err.path.startswith(path)
    assert fragment in str(err)
    assert "got" in str(err)


def test_error_names_the_nested_field_path():
    err = spec_error(parse_input_source, {"type": "s3", "uris": ["s3://b/k"], "proxyConfig": {"port": 0}})
    assert err.path.endswith("proxyConfig.port") and err.value == 0


def test_environment_password_provider(monkeypatch):
    source = parse_input_source(
        {"type": "http", "uris": ["http://h/x"], "httpAuthenticationUsername": "u",
         "httpAuthenticationPassword": {"type": "environment", "variable": "DF_TEST_PW"}}
    )
    monkeypatch.setenv("DF_TEST_PW", "s3cret")
    assert resolve_password(source.http_authentication_password) == "s3cret"
    monkeypatch.delenv("DF_TEST_PW")
    with pytest.raises(InputError, match="DF_TEST_PW"):
        resolve_password(source.http_authentication_password)


# ---------------------------------------------------------------------------------------------- input formats


def test_formats_and_defaults():
    csv = parse_input_format({"type": "csv", "columns": ["ts", "page"]})
    assert isinstance(csv, CsvInputFormat) and csv.skip_header_rows == 0 and not csv.uses_header
    assert csv.effective_list_delimiter == "\u0001"
    tsv = parse_input_format({"type": "tsv", "findColumnsFromHeader": True, "listDelimiter": "|"})
    assert isinstance(tsv, TsvInputFormat) and tsv.delimiter == "\t" and tsv.uses_header
    assert tsv.effective_list_delimiter == "|"
    assert parse_input_format({"type": "tsv", "hasHeaderRow": True}).uses_header  # Druid's old name
    json_fmt = parse_input_format({"type": "json", "keepNullColumns": True, "featureSpec": {"ALLOW_COMMENTS": False}})
    assert isinstance(json_fmt, JsonInputFormat) and json_fmt.keep_null_columns
    pq = parse_input_format({"type": "parquet", "binaryAsString": True})
    assert isinstance(pq, ParquetInputFormat) and pq.binary_as_string


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"type": "csv"}, "columns are required unless findColumnsFromHeader"),
        ({"type": "csv", "findColumnsFromHeader": False, "columns": []}, "columns are required"),
        ({"type": "csv", "columns": ["a", "b", "a"]}, "duplicate column 'a'"),
        ({"type": "csv", "columns": ["a,b"]}, "contains the delimiter"),
        ({"type": "csv", "columns": ["a"], "listDelimiter": ","}, "same as the delimiter"),
        ({"type": "csv", "columns": ["a"], "skipHeaderRows": -1}, "greater than or equal to 0"),
        ({"type": "tsv", "columns": ["a"], "delimiter": "||"}, "single character"),
        ({"type": "tsv", "columns": ["a"], "delimiter": "\n"}, "line break"),
        ({"type": "json", "featureSpec": {"ALLOW_SINGLE_QUOTES": True}}, "ALLOW_SINGLE_QUOTES is not supported"),
        ({"type": "json", "flattenSpec": {"fields": [{"type": "jq", "name": "x", "expr": ".a | map(.)"}]}}, "unsupported jq"),
        ({"type": "json", "flattenSpec": {"fields": [{"type": "path", "name": "x"}]}}, "needs 'expr'"),
        ({"type": "json", "flattenSpec": {"fields": [{"type": "path", "name": "x", "expr": "$..a"}]}}, "unsupported JSONPath"),
        ({"type": "json", "flattenSpec": {"fields": [{"type": "root", "name": "x"}, {"type": "root", "name": "x"}]}}, "duplicate flatten field"),
        ({"type": "orc"}, "does not match"),
    ],
)
def test_bad_formats_name_the_field_and_value(data, fragment):
    err = spec_error(parse_input_format, data)
    assert err.path.startswith("inputFormat")
    assert fragment in str(err)


def test_csv_missing_columns_error_points_at_columns():
    err = spec_error(parse_input_format, {"type": "csv", "skipHeaderRows": 1})
    assert err.path.endswith("columns") and err.value is None


@pytest.mark.parametrize(
    "expr, steps",
    [
        ("$.a", ("a",)),
        ("$.a.b[0].c", ("a", "b", 0, "c")),
        ("$['key with space'][\"q\"]", ("key with space", "q")),
        ("$.list[-1]", ("list", -1)),
        ("$", ()),
    ],
)
def test_json_path_steps(expr, steps):
    assert parse_json_path(expr).steps == steps and parse_json_path(expr).function is None


@pytest.mark.parametrize("expr", ["a.b", "$..a", "$.a.foo()", "$.a.length().b", "$.a[?(@.x)]", "$.*", "$.a[1:2]"])
def test_json_path_rejects_what_it_cannot_do(expr):
    with pytest.raises(ValueError):
        parse_json_path(expr)


# ---------------------------------------------------------------------------------------------- firehoses


def test_firehoses_become_input_sources():
    local = parse_firehose({"type": "local", "baseDir": "/data", "filter": "wiki*.json"})
    assert isinstance(local, LocalFirehose)
    assert local.to_input_source() == LocalInputSource(base_dir="/data", filter="wiki*.json")

    http = parse_firehose(
        {"type": "http", "uris": ["http://h/a.json"], "maxCacheCapacityBytes": 0, "maxFetchRetry": 5,
         "httpAuthenticationUsername": "u", "httpAuthenticationPassword": "p"}
    )
    assert isinstance(http, HttpFirehose) and http.max_fetch_retry == 5 and http.fetch_timeout == 60_000
    assert http.to_input_source() == HttpInputSource(
        uris=["http://h/a.json"], http_authentication_username="u", http_authentication_password="p"
    )

    s3 = parse_firehose({"type": "static-s3", "prefixes": ["s3://b/p/"], "prefetchTriggerBytes": 10})
    assert isinstance(s3, StaticS3Firehose)
    assert s3.to_input_source() == S3InputSource(prefixes=["s3://b/p/"])

    inline = parse_firehose({"type": "inline", "data": "a,b"})
    assert isinstance(inline, InlineFirehose) and inline.to_input_source() == InlineInputSource(data="a,b")

    ingest = parse_firehose(
        {"type": "ingestSegment", "dataSource": "wiki", "interval": "2024-01-01/2024-01-02",
         "dimensions": [], "metrics": None, "filter": {"type": "selector", "dimension": "a", "value": "b"}}
    )
    assert isinstance(ingest, IngestSegmentFirehose)
    source = ingest.to_input_source()
    assert isinstance(source, DruidInputSource)
    assert source.dimensions == [] and source.metrics is None and str(source.interval).startswith("2024-01-01T")


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"type": "local", "baseDir": "/d"}, "Field required"),
        ({"type": "local", "filter": "*"}, "Field required"),
        ({"type": "http", "uris": ["http://h/x"], "maxFetchRetry": -1}, "greater than or equal to 0"),
        ({"type": "static-s3", "uris": ["s3://b/k"], "prefixes": ["s3://b/"]}, "exactly one of uris or prefixes"),
        ({"type": "static-s3"}, "exactly one of uris or prefixes"),
        ({"type": "ingestSegment", "dataSource": "w"}, "exactly one of interval or segments"),
        ({"type": "combining", "delegates": []}, "at least 1 item"),
    ],
)
def test_bad_firehoses(data, fragment):
    err = spec_error(parse_firehose, data)
    assert err.path.startswith("firehose") and fragment in str(err)
