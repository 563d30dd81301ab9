"""load_path: one string per physical file, equal exactly when two loadSpecs name the same file."""

from __future__ import annotations

from druidflow.metadata.load_path import load_path


def test_known_load_specs_name_their_file():
    assert load_path({"type": "local", "path": "/deep/wiki/x/index.parquet"}) == "/deep/wiki/x/index.parquet"
    assert load_path({"type": "s3_zip", "bucket": "b", "key": "wiki/x/index.zip", "S3Schema": "s3n"}) == "s3://b/wiki/x/index.zip"
    assert load_path({"type": "s3", "bucket": "b", "key": "k"}) == "s3://b/k"
    assert load_path({"type": "google", "bucket": "g", "path": "p"}) == "gs://g/p"
    assert load_path({"type": "hdfs", "path": "hdfs://nn/p"}) == "hdfs://nn/p"


def test_local_paths_are_made_absolute_like_the_local_deep_storage_does():
    import os

    assert load_path({"type": "local", "path": "rel/index.parquet"}) == os.path.abspath("rel/index.parquet")


def test_other_load_specs_compare_by_canonical_json_and_fit_the_column():
    a = load_path({"type": "azure", "containerName": "c", "blobPath": "p"})
    assert a == load_path({"blobPath": "p", "type": "azure", "containerName": "c"})
    assert load_path({}) == ""
    long = load_path({"type": "x", "blob": "y" * 2000})
    assert long.startswith("sha1:") and len(long) <= 1024
