"""S3 deep storage against a real S3-compatible server (moto in server mode, over HTTP)."""

from __future__ import annotations

import os
import pickle

import pytest

from druidflow.exceptions import StorageError
from druidflow.storage import S3DeepStorage, deep_storage_from_uri
from druidflow.storage.s3_client import ENDPOINT_ENV

KEY = "wiki/2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z/v1/0/segment.parquet"


@pytest.fixture
def bucket(s3_server) -> str:
    return s3_server.make_bucket()


@pytest.fixture
def store(s3_server, bucket) -> S3DeepStorage:
    return deep_storage_from_uri(f"s3://{bucket}/deep", **s3_server.options)


def test_endpoint_and_credentials_from_environment(s3_server, bucket, tmp_path, monkeypatch):
    monkeypatch.setenv(ENDPOINT_ENV, s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    store = deep_storage_from_uri(f"s3://{bucket}")
    f = tmp_path / "f"
    f.write_bytes(b"hello")
    spec = store.push(f, KEY)
    assert spec == {"type": "s3", "bucket": bucket, "key": KEY}
    body = s3_server.client().get_object(Bucket=bucket, Key=KEY)["Body"].read()
    assert body == b"hello"


def test_large_push_goes_multipart_and_reads_back(store, s3_server, tmp_path):
    big = tmp_path / "big.bin"
    data = os.urandom(9 << 20)  # above boto3's 8 MiB multipart threshold
    big.write_bytes(data)
    spec = store.push(big, KEY)
    head = s3_server.client().head_object(Bucket=spec["bucket"], Key=spec["key"])
    assert "-" in head["ETag"]  # a multipart ETag: "<md5>-<parts>"
    with store.open_local(spec) as path:
        assert path.read_bytes() == data
    assert not path.exists()  # the temporary download is removed on exit


def test_listing_stays_inside_the_storage_prefix(store, s3_server, bucket, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"12345")
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="elsewhere/wiki/x", Body=b"x")
    client.put_object(Bucket=bucket, Key="deep/wiki/dir-marker/", Body=b"")
    store.push(f, KEY)
    assert list(store.list_keys()) == [(KEY, 5, {"type": "s3", "bucket": bucket, "key": f"deep/{KEY}"})]


def test_druid_s3_zip_load_spec_can_be_deleted(store, s3_server, bucket):
    s3_server.client().put_object(Bucket=bucket, Key="druid/wiki/index.zip", Body=b"zip")
    spec = {"type": "s3_zip", "bucket": bucket, "key": "druid/wiki/index.zip", "S3Schema": "s3n"}
    assert store.exists(spec)
    assert store.load_path(spec) == f"s3://{bucket}/druid/wiki/index.zip"
    assert store.delete(spec) is True
    assert not store.exists(spec)


def test_missing_bucket_is_a_storage_error(s3_server, tmp_path):
    store = deep_storage_from_uri("s3://no-such-bucket-druidflow/x", **s3_server.options)
    f = tmp_path / "f"
    f.write_bytes(b"x")
    with pytest.raises(StorageError, match="no-such-bucket-druidflow"):
        store.push(f, KEY)
    with pytest.raises(StorageError):
        store.delete(store.load_spec_for(KEY))
    with pytest.raises(StorageError):
        list(store.list_keys())


def test_pickles_without_its_client(store, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    spec = store.push(f, KEY)
    again = pickle.loads(pickle.dumps(store))
    assert again.exists(spec)
