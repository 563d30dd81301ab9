"""Input sources: local files, inline data, HTTP (a real local server) and S3 (moto server over HTTP)."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from druidflow.exceptions import InputError
from druidflow.inputs import open_input
from druidflow.inputs.sources import commons_io_wildcard, java_glob
from druidflow.specs.firehoses import LocalFirehose
from druidflow.specs.io import (
    CsvInputFormat,
    DruidInputSource,
    HttpInputSource,
    InlineInputSource,
    JsonInputFormat,
    LocalInputSource,
    ParquetInputFormat,
    S3InputSource,
    parse_firehose,
)

from .helpers import read_all


def jsonl(*objs) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


# ------------------------------------------------------------------------------------------------------- local


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "data"
    (root / "2024" / "01").mkdir(parents=True)
    (root / "b.json").write_text(jsonl({"f": "b"}))
    (root / "a.json").write_text(jsonl({"f": "a"}))
    (root / "2024" / "01" / "c.json").write_text(jsonl({"f": "c"}))
    (root / "2024" / "notes.txt").write_text("not json")
    (root / "empty.json").write_text("")
    (root / "x.json.bak").write_text("nope")
    return root


def test_local_base_dir_is_searched_recursively_sorted_and_filtered_by_name(tree):
    reader = open_input(LocalInputSource(base_dir=str(tree), filter="*.json"), JsonInputFormat())
    assert [o.uri for o in reader.objects()] == [
        str(tree / "2024" / "01" / "c.json"), str(tree / "a.json"), str(tree / "b.json")
    ]  # empty.json skipped, notes.txt and x.json.bak filtered out
    assert [r["f"] for b in reader.batches() for r in b.data.to_pylist()] == ["c", "a", "b"]


def test_local_files_after_base_dir_each_read_once(tree):
    files = [str(tree / "2024" / "01" / "c.json"), str(tree / "b.json"), str(tree / "a.json")]
    reader = open_input(LocalInputSource(base_dir=str(tree), filter="b.js?n", files=files), JsonInputFormat())
    assert [o.uri.rsplit("/", 1)[1] for o in reader.objects()] == ["b.json", "c.json", "a.json"]


def test_local_files_only_and_empty_skipped(tree):
    reader = open_input(LocalInputSource(files=[str(tree / "empty.json"), str(tree / "b.json")]), JsonInputFormat())
    assert [o.uri for o in reader.objects()] == [str(tree / "b.json")]


def test_local_firehose_reads_like_the_input_source(tree):
    firehose = parse_firehose({"type": "local", "baseDir": str(tree), "filter": "*.json"})
    assert isinstance(firehose, LocalFirehose)
    rows, _, _ = read_all(firehose, JsonInputFormat())
    assert [r["f"] for r in rows] == ["c", "a", "b"]


def test_reader_accepts_druid_json_dicts(tree):
    rows, _, _ = read_all({"type": "local", "baseDir": str(tree), "filter": "a.json"}, {"type": "json"})
    assert rows == [{"f": "a"}]


@pytest.mark.parametrize(
    "source, fragment",
    [
        (LocalInputSource(base_dir="/no/such/dir", filter="*"), "/no/such/dir"),
        (LocalInputSource(files=["/no/such/file.json"]), "/no/such/file.json"),
    ],
)
def test_local_missing_input_is_an_input_error_naming_it(source, fragment):
    with pytest.raises(InputError, match=fragment):
        list(open_input(source, JsonInputFormat()).batches())


def test_local_directory_in_files_is_refused(tmp_path):
    with pytest.raises(InputError, match="not a file"):
        open_input(LocalInputSource(files=[str(tmp_path)]), JsonInputFormat()).objects()


@pytest.mark.parametrize(
    "pattern, name, matches",
    [("*.json", "a.json", True), ("*.json", "a.json.gz", False), ("wiki-?.csv", "wiki-1.csv", True),
     ("wiki-?.csv", "wiki-10.csv", False), ("[ab].json", "[ab].json", True), ("[ab].json", "a.json", False),
     ("*", ".hidden", True), ("*.JSON", "a.json", False)],
)
def test_commons_io_wildcard(pattern, name, matches):
    assert bool(commons_io_wildcard(pattern).fullmatch(name)) is matches


@pytest.mark.parametrize(
    "glob, key, matches",
    [("**.json", "a/b/c.json", True), ("*.json", "a/b/c.json", False), ("*.json", "c.json", True),
     ("a/*/c.json", "a/b/c.json", True), ("a/*/c.json", "a/b/x/c.json", False), ("**/c.{json,csv}", "a/c.csv", True),
     ("file-[0-9].json", "file-7.json", True), ("file-[!0-9].json", "file-7.json", False), ("?.json", "ab.json", False)],
)
def test_object_glob_is_a_java_glob(glob, key, matches):
    assert bool(java_glob(glob).fullmatch(key)) is matches


# ------------------------------------------------------------------------------------------------------ inline


def test_inline_source():
    rows, _, batches = read_all(InlineInputSource(data="a,1\nb,2"), CsvInputFormat(columns=["s", "n"]))
    assert rows == [{"s": "a", "n": "1"}, {"s": "b", "n": "2"}]
    assert batches[0].source == "inline" and sum(b.bytes_read for b in batches) == 7


def test_druid_input_source_is_for_the_engine():
    source = DruidInputSource(data_source="wiki", interval="2024-01-01/P1D")
    with pytest.raises(InputError, match="read by the engine"):
        open_input(source, None)


def test_format_is_required_for_file_sources():
    from druidflow.exceptions import SpecError

    with pytest.raises(SpecError, match="inputFormat"):
        open_input(InlineInputSource(data="x"), None)


# -------------------------------------------------------------------------------------------------------- http


def test_http_source_reads_every_uri(http_server):
    (http_server.root / "a.json").write_text(jsonl({"n": 1}, {"n": 2}))
    (http_server.root / "b.csv.gz").write_bytes(gzip.compress(b"x\n"))
    rows, _, batches = read_all(HttpInputSource(uris=[http_server.url("a.json")]), JsonInputFormat())
    assert rows == [{"n": 1}, {"n": 2}] and batches[0].source == http_server.url("a.json")
    rows, _, _ = read_all(HttpInputSource(uris=[http_server.url("b.csv.gz")]), CsvInputFormat(columns=["c"]))
    assert rows == [{"c": "x"}]


def test_http_404_names_the_uri(http_server):
    uri = http_server.url("missing.json")
    with pytest.raises(InputError, match=f"HTTP 404 .* for {uri}"):
        list(open_input(HttpInputSource(uris=[uri]), JsonInputFormat()).batches())


def test_http_retries_server_errors(http_server, monkeypatch):
    import druidflow.inputs.sources as sources

    monkeypatch.setattr(sources.time, "sleep", lambda s: None)
    (http_server.root / "a.json").write_text(jsonl({"n": 1}))
    http_server.fail_next = 2
    rows, _, _ = read_all(HttpInputSource(uris=[http_server.url("a.json")]), JsonInputFormat())
    assert rows == [{"n": 1}] and len(http_server.requests) == 3
    http_server.fail_next = 10
    with pytest.raises(InputError, match="HTTP 503"):
        list(open_input(HttpInputSource(uris=[http_server.url("a.json")]), JsonInputFormat()).batches())


def test_http_unreachable_names_the_uri(monkeypatch):
    import druidflow.inputs.sources as sources

    monkeypatch.setattr(sources.HttpObject, "RETRIES", 0)
    uri = "http://127.0.0.1:9/x.json"  # the discard port: nothing listens
    with pytest.raises(InputError, match="127.0.0.1:9/x.json"):
        list(open_input(HttpInputSource(uris=[uri]), JsonInputFormat()).batches())


def test_http_basic_authentication(http_server):
    http_server.credentials = ("druid", "s3cret")
    (http_server.root / "a.json").write_text(jsonl({"n": 1}))
    uri = http_server.url("a.json")
    with pytest.raises(InputError, match="401"):
        list(open_input(HttpInputSource(uris=[uri]), JsonInputFormat()).batches())
    source = HttpInputSource(
        uris=[uri], http_authentication_username="druid", http_authentication_password={"type": "default", "password": "s3cret"}
    )
    rows, _, _ = read_all(source, JsonInputFormat())
    assert rows == [{"n": 1}]


def test_http_parquet_is_downloaded_then_read(http_server):
    pq.write_table(pa.table({"n": [1, 2, 3]}), http_server.root / "p.parquet")
    rows, _, batches = read_all(HttpInputSource(uris=[http_server.url("p.parquet")]), ParquetInputFormat())
    assert [r["n"] for r in rows] == [1, 2, 3]
    assert sum(b.bytes_read for b in batches) == (http_server.root / "p.parquet").stat().st_size


# ---------------------------------------------------------------------------------------------------------- s3


@pytest.fixture
def s3_data(s3_server):
    bucket = s3_server.make_bucket()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="in/2024/a.json", Body=jsonl({"f": "a"}).encode())
    client.put_object(Bucket=bucket, Key="in/2024/b.json", Body=jsonl({"f": "b"}).encode())
    client.put_object(Bucket=bucket, Key="in/2024/empty.json", Body=b"")
    client.put_object(Bucket=bucket, Key="in/2024/", Body=b"")
    client.put_object(Bucket=bucket, Key="in/c.csv", Body=b"x,y\n")
    client.put_object(Bucket=bucket, Key="in/deep/d.json.gz", Body=gzip.compress(jsonl({"f": "d"}).encode()))
    return bucket


def s3_source(s3_server, **kwargs) -> S3InputSource:
    return S3InputSource(**kwargs, **s3_server.input_source_config)


def test_s3_prefixes_list_objects_and_skip_empty(s3_server, s3_data):
    reader = open_input(s3_source(s3_server, prefixes=[f"s3://{s3_data}/in/2024/"]), JsonInputFormat())
    assert [o.uri for o in reader.objects()] == [f"s3://{s3_data}/in/2024/a.json", f"s3://{s3_data}/in/2024/b.json"]
    assert [r["f"] for b in reader.batches() for r in b.data.to_pylist()] == ["a", "b"]


def test_s3_uris_and_objects(s3_server, s3_data):
    rows, _, _ = read_all(s3_source(s3_server, uris=[f"s3://{s3_data}/in/2024/b.json", f"s3://{s3_data}/in/deep/d.json.gz"]), JsonInputFormat())
    assert [r["f"] for r in rows] == ["b", "d"]
    rows, _, _ = read_all(s3_source(s3_server, objects=[{"bucket": s3_data, "path": "in/2024/a.json"}]), JsonInputFormat())
    assert rows == [{"f": "a"}]


def test_s3_object_glob(s3_server, s3_data):
    reader = open_input(s3_source(s3_server, prefixes=[f"s3://{s3_data}/in/"], object_glob="**.json*"), JsonInputFormat())
    assert [o.uri.split("/in/")[1] for o in reader.objects()] == ["2024/a.json", "2024/b.json", "deep/d.json.gz"]
    reader = open_input(s3_source(s3_server, prefixes=[f"s3://{s3_data}/"], object_glob="in/*.csv"), CsvInputFormat(columns=["a", "b"]))
    assert [r for b in reader.batches() for r in b.data.to_pylist()] == [{"a": "x", "b": "y"}]


def test_s3_missing_object_and_bucket(s3_server, s3_data):
    with pytest.raises(InputError, match=f"s3://{s3_data}/in/nope.json does not exist"):
        list(open_input(s3_source(s3_server, uris=[f"s3://{s3_data}/in/nope.json"]), JsonInputFormat()).batches())
    with pytest.raises(InputError, match="no-such-bucket-df"):
        open_input(s3_source(s3_server, prefixes=["s3://no-such-bucket-df/x/"]), JsonInputFormat()).objects()
    with pytest.raises(InputError, match="no-such-bucket-df"):
        list(open_input(s3_source(s3_server, uris=["s3://no-such-bucket-df/x.json"]), JsonInputFormat()).batches())


def test_s3_endpoint_from_environment(s3_server, s3_data, monkeypatch):
    monkeypatch.setenv("DRUIDFLOW_S3_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    rows, _, _ = read_all(S3InputSource(uris=[f"s3://{s3_data}/in/2024/a.json"]), JsonInputFormat())
    assert rows == [{"f": "a"}]


def test_s3_endpoint_without_scheme_uses_client_protocol(s3_server, s3_data):
    config = s3_server.input_source_config
    config["endpointConfig"]["url"] = s3_server.endpoint_url.removeprefix("http://")
    config["clientConfig"]["protocol"] = "http"
    rows, _, _ = read_all(S3InputSource(uris=[f"s3://{s3_data}/in/2024/a.json"], **config), JsonInputFormat())
    assert rows == [{"f": "a"}]


def test_s3_parquet(s3_server):
    import io

    bucket = s3_server.make_bucket()
    buf = io.BytesIO()
    pq.write_table(pa.table({"n": list(range(10))}), buf, row_group_size=4)
    s3_server.client().put_object(Bucket=bucket, Key="p/x.parquet", Body=buf.getvalue())
    rows, _, batches = read_all(s3_source(s3_server, prefixes=[f"s3://{bucket}/p/"]), ParquetInputFormat(), batch_rows=4)
    assert [r["n"] for r in rows] == list(range(10))
    assert sum(b.bytes_read for b in batches) == len(buf.getvalue())


def test_s3_assume_role_through_sts(s3_server, s3_data, monkeypatch):
    monkeypatch.setenv("DRUIDFLOW_STS_ENDPOINT_URL", s3_server.endpoint_url)
    config = s3_server.input_source_config
    config["properties"]["assumeRoleArn"] = "arn:aws:iam::123456789012:role/reader"
    config["properties"]["assumeRoleExternalId"] = "ext"
    rows, _, _ = read_all(S3InputSource(uris=[f"s3://{s3_data}/in/2024/a.json"], **config), JsonInputFormat())
    assert rows == [{"f": "a"}]
