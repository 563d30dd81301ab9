"""Hooks: a Connection becomes a SQLAlchemy URL/engine and a deep storage, without Airflow's ORM."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from druidflow.airflow.hooks import (
    DEFAULT_LOCK_LEASE_SECONDS,
    DeepStorageHook,
    DruidflowMetadataHook,
    s3_options_from_connection,
    sqlalchemy_url_from_connection,
)


def _conn(uri=None, **fields):
    from airflow.sdk import Connection

    if uri is not None:
        return Connection.from_uri(uri, conn_id="c")
    return Connection(conn_id="c", **fields)


@pytest.mark.parametrize(
    ("conn", "url"),
    [
        (lambda: _conn("sqlite:////tmp/af/airflow.db"), "sqlite:////tmp/af/airflow.db"),
        (lambda: _conn("postgresql://u:p%40ss@db:5433/airflow"), "postgresql+psycopg2://u:p%40ss@db:5433/airflow"),
        (
            lambda: _conn("postgresql+psycopg2://u:p@db/airflow?sslmode=disable"),
            "postgresql+psycopg2://u:p@db/airflow?sslmode=disable",
        ),
        (
            lambda: _conn(conn_type="druidflow", host="pg", login="a", password="b", schema="meta", port=5432),
            "postgresql+psycopg2://a:b@pg:5432/meta",
        ),
        (
            lambda: _conn(conn_type="druidflow", host="/data/meta.db", extra=json.dumps({"dialect": "sqlite"})),
            "sqlite:////data/meta.db",
        ),
        (
            lambda: _conn(conn_type="druidflow", extra=json.dumps({"sqlalchemy_url": "sqlite:///rel.db"})),
            "sqlite:///rel.db",
        ),
    ],
)
def test_connection_shapes_give_sqlalchemy_urls(conn, url):
    assert sqlalchemy_url_from_connection(conn()) == url


def test_an_unknown_connection_type_says_what_to_set():
    with pytest.raises(ValueError, match="sqlalchemy_url"):
        sqlalchemy_url_from_connection(_conn(conn_type="http", host="x"))


def test_metadata_hook_builds_its_own_engine_from_an_env_connection(monkeypatch, db_url):
    monkeypatch.setenv("AIRFLOW_CONN_DRUIDFLOW_METADATA", db_url)
    hook = DruidflowMetadataHook()
    assert hook.sqlalchemy_url.split("?")[0] == db_url.split("?")[0]
    with hook.engine.connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar() == 1
    assert hook.lockbox.engine.url == hook.engine.url  # one database for the store and the lockbox
    assert hook.lockbox.lease_ms == int(DEFAULT_LOCK_LEASE_SECONDS * 1000)
    ok, message = hook.test_connection()
    assert not ok and "airflow db migrate" in message  # the tables are not there yet
    hook.close()


def test_lock_lease_comes_from_the_connection_extra(monkeypatch, sqlite_url):
    conn = {"conn_type": "druidflow", "extra": {"sqlalchemy_url": sqlite_url, "lock_lease_seconds": 45}}
    monkeypatch.setenv("AIRFLOW_CONN_META2", json.dumps(conn))
    assert DruidflowMetadataHook("meta2").lockbox.lease_ms == 45_000
    conn["extra"]["lock_lease_seconds"] = "soon"
    monkeypatch.setenv("AIRFLOW_CONN_META3", json.dumps(conn))
    with pytest.raises(ValueError, match="lock_lease_seconds"):
        DruidflowMetadataHook("meta3").lockbox


def test_deep_storage_hook_local_path(monkeypatch, tmp_path):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE",
        json.dumps({"conn_type": "druidflow_deep_storage", "extra": {"uri": str(tmp_path / "deep")}}),
    )
    hook = DeepStorageHook()
    assert hook.uri == str(tmp_path / "deep")
    assert hook.s3_options == {}
    assert type(hook.storage).__name__ == "LocalDeepStorage"


def test_deep_storage_hook_file_uri_keeps_the_leading_slash(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DS_FILE", "file:///data/deep")
    assert DeepStorageHook("ds_file").uri == "/data/deep"


def test_deep_storage_hook_s3_through_an_aws_connection(monkeypatch, s3_server):
    bucket = s3_server.make_bucket()
    monkeypatch.setenv(
        "AIRFLOW_CONN_MY_AWS",
        json.dumps(
            {
                "conn_type": "aws",
                "login": s3_server.access_key_id,
                "password": s3_server.secret_access_key,
                "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEEP_S3",
        json.dumps({"conn_type": "druidflow_deep_storage", "extra": {"uri": f"s3://{bucket}/seg", "aws_conn_id": "my_aws"}}),
    )
    hook = DeepStorageHook("deep_s3")
    assert hook.s3_options == s3_server.options
    storage = hook.storage
    assert type(storage).__name__ == "S3DeepStorage"
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "f.bin"
        src.write_bytes(b"druid")
        load_spec = storage.push(src, "wiki/x/f.bin")
    assert storage.exists(load_spec)
    keys = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [k["Key"] for k in keys] == ["seg/wiki/x/f.bin"]


def test_s3_options_from_an_aws_connection_extra_variants():
    conn = _conn(conn_type="aws", login="AK", password="SK", extra=json.dumps(
        {"service_config": {"s3": {"endpoint_url": "http://minio:9000"}}, "region": "eu-west-1"}))
    assert s3_options_from_connection(conn) == {
        "aws_access_key_id": "AK",
        "aws_secret_access_key": "SK",
        "endpoint_url": "http://minio:9000",
        "region_name": "eu-west-1",
    }


def test_deep_storage_hook_without_a_location_says_what_to_set(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY_DS", json.dumps({"conn_type": "druidflow_deep_storage"}))
    with pytest.raises(ValueError, match="extra 'uri'"):
        DeepStorageHook("empty_ds").uri
