"""One behaviour suite for every deep storage: local files and S3 (moto server over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from druidflow.exceptions import SegmentFileExistsError, SegmentNotFoundError
from druidflow.intervals import Interval
from druidflow.segments.ids import storage_dir
from druidflow.storage import DeepStorage, LocalDeepStorage, S3DeepStorage, deep_storage_from_uri

DAY = Interval.parse("2024-01-01/2024-01-02")


def segment_key(partition: int = 0, version: str = "2024-05-01T00:00:00.000Z", ds: str = "wiki") -> str:
    return storage_dir(ds, DAY, version, partition) + "/segment.parquet"


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path) -> DeepStorage:
    if request.param == "local":
        return deep_storage_from_uri(str(tmp_path / "deep"))
    server = request.getfixturevalue("s3_server")
    bucket = server.make_bucket()
    return deep_storage_from_uri(f"s3://{bucket}/druid/segments", **server.options)


@pytest.fixture
def parquet_file(tmp_path) -> Path:
    path = tmp_path / "local-segment.parquet"
    pq.write_table(pa.table({"__time": pa.array([1, 2, 3], pa.int64()), "page": ["a", "b", "c"]}), path)
    return path


def test_push_then_read_back_as_parquet(storage, parquet_file):
    spec = storage.push(parquet_file, segment_key())
    assert storage.exists(spec)
    with storage.open_local(spec) as path:
        assert pq.read_table(path).column("page").to_pylist() == ["a", "b", "c"]


def test_load_spec_shape(storage, parquet_file):
    key = segment_key()
    spec = storage.push(parquet_file, key)
    assert spec == storage.load_spec_for(key)
    if isinstance(storage, LocalDeepStorage):
        assert spec == {"type": "local", "path": str(storage.root / key)}
        assert Path(spec["path"]).is_absolute()
        assert storage.load_path(spec) == spec["path"]
    else:
        assert spec == {"type": "s3", "bucket": storage.bucket, "key": f"druid/segments/{key}"}
        assert storage.load_path(spec) == f"s3://{storage.bucket}/druid/segments/{key}"


def test_a_push_never_replaces_a_stored_file(storage, parquet_file, tmp_path):
    spec = storage.push(parquet_file, segment_key())
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [42]}), other)
    with pytest.raises(SegmentFileExistsError, match="write-once"):
        storage.push(other, segment_key())
    with storage.open_local(spec) as path:
        assert pq.read_table(path).column("page").to_pylist() == ["a", "b", "c"]  # still the first file
    assert [k for k, *_ in storage.list_keys()] == [segment_key()]  # and no temporary file left behind


def test_delete_then_missing_delete_counts_as_deleted(storage, parquet_file):
    spec = storage.push(parquet_file, segment_key())
    assert storage.delete(spec) is True
    assert not storage.exists(spec)
    assert storage.delete(spec) is True  # already gone: still deleted, no error


def test_open_missing_raises_segment_not_found(storage):
    with pytest.raises(SegmentNotFoundError):
        with storage.open_local(storage.load_spec_for(segment_key(7))):
            pass


def test_list_keys_in_key_order_with_prefix(storage, parquet_file):
    keys = [segment_key(1), segment_key(0), segment_key(0, ds="wiki2"), segment_key(0, ds="other")]
    specs = {k: storage.push(parquet_file, k) for k in keys}
    size = parquet_file.stat().st_size
    listed = list(storage.list_keys())
    assert [k for k, _, _ in listed] == sorted(keys)
    assert all(s == size for _, s, _ in listed)
    assert all(spec == specs[k] for k, _, spec in listed)
    # A prefix is a string prefix of the key, as on S3: "wiki" also matches "wiki2".
    assert [k for k, _, _ in storage.list_keys("wiki/")] == sorted([segment_key(0), segment_key(1)])
    assert [k for k, _, _ in storage.list_keys("wiki")] == sorted([segment_key(0), segment_key(1), segment_key(0, ds="wiki2")])
    assert list(storage.list_keys("nothing-here/")) == []


def test_load_path_is_stable_and_distinct(storage, parquet_file):
    a = storage.push(parquet_file, segment_key(0))
    b = storage.push(parquet_file, segment_key(1))
    assert storage.load_path(a) == storage.load_path(dict(a))
    assert storage.load_path(a) != storage.load_path(b)


def test_foreign_load_spec_is_refused(storage):
    foreign = {"type": "hdfs", "path": "/x"}
    for op in (storage.exists, storage.delete, storage.load_path):
        with pytest.raises(SegmentNotFoundError, match="not"):
            op(foreign)


@pytest.mark.parametrize("bad", ["", "/abs/key", "a/../b", "a//b", "a/./b"])
def test_bad_keys_rejected(storage, parquet_file, bad):
    with pytest.raises(ValueError, match="invalid deep-storage key"):
        storage.push(parquet_file, bad)


def test_storage_recreated_from_its_uri(storage):
    again = deep_storage_from_uri(storage.uri, **({} if isinstance(storage, LocalDeepStorage) else _options(storage)))
    assert type(again) is type(storage) and again.uri == storage.uri


def _options(storage: S3DeepStorage) -> dict:
    return {k: v for k, v in storage._options.items() if v is not None}
