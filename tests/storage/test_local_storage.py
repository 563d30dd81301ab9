"""Local deep storage: atomic pushes, Druid's empty-directory cleanup on delete, URI handling."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from druidflow.exceptions import SpecError, StorageError
from druidflow.storage import LocalDeepStorage, S3DeepStorage, deep_storage_from_uri
from druidflow.storage.local import INTERMEDIATE_DIR

KEY = "wiki/2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z/v1/0/segment.parquet"


@pytest.fixture
def store(tmp_path) -> LocalDeepStorage:
    return LocalDeepStorage(tmp_path / "deep")


@pytest.fixture
def payload(tmp_path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(3 << 20))
    return path


def test_crash_before_rename_leaves_no_file_at_the_key(store, payload):
    # A child process pushes and dies (os._exit, no cleanup) at the moment it would link into place.
    script = textwrap.dedent(
        f"""
        import os
        from druidflow.storage.local import LocalDeepStorage
        os.link = lambda src, dst: os._exit(17)
        LocalDeepStorage({str(store.root)!r}).push({str(payload)!r}, {KEY!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 17, proc.stderr
    assert not (store.root / KEY).exists()
    assert list(store.list_keys()) == []
    leftovers = list((store.root / INTERMEDIATE_DIR).iterdir())
    assert len(leftovers) == 1 and leftovers[0].stat().st_size == payload.stat().st_size
    # The leftover is swept once it is old enough, and only then.
    assert store.clean_intermediate_pushes(older_than_seconds=3600) == 0
    old = time.time() - 7200
    os.utime(leftovers[0], (old, old))
    assert store.clean_intermediate_pushes(older_than_seconds=3600) == 1
    assert list((store.root / INTERMEDIATE_DIR).iterdir()) == []


def test_failed_rename_keeps_previous_file_and_cleans_temp(store, payload, tmp_path, monkeypatch):
    old = tmp_path / "old.bin"
    old.write_bytes(b"previous segment")
    store.push(old, KEY)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", broken_replace)
    with pytest.raises(StorageError, match="No space left"):
        store.push(payload, KEY)
    assert (store.root / KEY).read_bytes() == b"previous segment"
    assert list((store.root / INTERMEDIATE_DIR).iterdir()) == []


def test_push_writes_through_intermediate_dir(store, payload, monkeypatch):
    seen = []
    real_replace = os.link

    def spy(src, dst):
        seen.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "link", spy)
    spec = store.push(payload, KEY)
    [(src, dst)] = seen
    assert src.parent == store.root / INTERMEDIATE_DIR
    assert dst == store.root / KEY == Path(spec["path"])
    assert dst.read_bytes() == payload.read_bytes()


def test_push_survives_a_concurrent_kill_removing_the_directory(store, payload, monkeypatch):
    real_replace = os.link
    calls = {"n": 0}

    def racing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 1:  # the killer removes the (empty) partition directory just before our rename
            os.rmdir(os.path.dirname(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "link", racing_replace)
    spec = store.push(payload, KEY)
    assert calls["n"] == 2 and Path(spec["path"]).is_file()


def test_delete_removes_empty_parents_up_to_the_datasource_dir(store, payload):
    spec = store.push(payload, KEY)
    store.delete(spec)
    assert not (store.root / "wiki" / "2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z").exists()
    assert (store.root / "wiki").is_dir()  # the dataSource directory itself stays


def test_delete_keeps_parents_that_still_hold_files(store, payload):
    p0 = store.push(payload, KEY)
    sibling = KEY.replace("/v1/0/", "/v1/1/")
    store.push(payload, sibling)
    store.delete(p0)
    assert not (store.root / KEY).parent.exists()  # partition 0's directory is empty: removed
    assert (store.root / sibling).is_file()  # version directory still holds partition 1
    store.delete(store.load_spec_for(sibling))
    assert list((store.root / "wiki").iterdir()) == []


def test_delete_of_missing_file_cleans_empty_parents(store):
    (store.root / KEY).parent.mkdir(parents=True)
    assert store.delete(store.load_spec_for(KEY)) is True
    assert list((store.root / "wiki").iterdir()) == []


def test_delete_outside_root_touches_only_the_file(store, tmp_path, payload):
    elsewhere = tmp_path / "elsewhere" / "x" / "segment.parquet"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(b"x")
    assert store.delete({"type": "local", "path": str(elsewhere)}) is True
    assert not elsewhere.exists() and elsewhere.parent.is_dir()


def test_delete_refuses_a_directory(store):
    (store.root / "wiki" / "d").mkdir(parents=True)
    with pytest.raises(StorageError, match="directory"):
        store.delete({"type": "local", "path": str(store.root / "wiki" / "d")})


def test_list_skips_unfinished_pushes(store, payload):
    store.push(payload, KEY)
    (store.root / INTERMEDIATE_DIR / "deadbeef").write_bytes(b"partial")
    assert [k for k, _, _ in store.list_keys()] == [KEY]


def test_reserved_key_rejected(store, payload):
    with pytest.raises(ValueError, match="reserved"):
        store.push(payload, f"{INTERMEDIATE_DIR}/x")


def test_open_local_is_the_file_itself(store, payload):
    spec = store.push(payload, KEY)
    with store.open_local(spec) as path:
        assert path == store.root / KEY
    assert path.exists()  # nothing is removed on exit


@pytest.mark.parametrize(
    "uri, expected",
    [("file:///var/druid/deep", "/var/druid/deep"), ("file://localhost/a%20b", "/a b"), ("/abs/dir", "/abs/dir")],
)
def test_uri_to_local(uri, expected):
    store = deep_storage_from_uri(uri)
    assert isinstance(store, LocalDeepStorage) and store.uri == expected


def test_relative_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert deep_storage_from_uri("deep").uri == str(tmp_path / "deep")
    assert deep_storage_from_uri(tmp_path / "p").uri == str(tmp_path / "p")


def test_s3_uri_and_options():
    store = deep_storage_from_uri("s3://bucket/base/prefix/", endpoint_url="http://h:1", region_name=None)
    assert isinstance(store, S3DeepStorage)
    assert (store.bucket, store.prefix, store.uri) == ("bucket", "base/prefix", "s3://bucket/base/prefix")
    assert store._options["endpoint_url"] == "http://h:1"


@pytest.mark.parametrize("bad", ["", "  ", "hdfs://nn/druid", "file://otherhost/x", "s3://"])
def test_bad_uris(bad):
    with pytest.raises(SpecError) as err:
        deep_storage_from_uri(bad)
    assert err.value.path == "deepStorage"
