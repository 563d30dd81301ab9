"""convert_segment in-process: new indexSpec, `_converted` versions, force and binary-version rules, validate."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from druidflow.exceptions import SpecError
from druidflow.locks import TaskLockbox
from druidflow.segments.format import read_segment
from druidflow.tasks import convert, index
from druidflow.tasks.dispatch import run_task
from druidflow.tasks.runtime import Runtime
from tests.tasks.test_merge import index_spec, rows, table

INTERVAL = "2024-01-01/2024-01-04"


@pytest.fixture
def rt(sqlite_url, tmp_path) -> Runtime:
    return Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")


def convert_spec(**extra):
    return {"type": "convert_segment", "dataSource": "m", "interval": INTERVAL,
            "indexSpec": {"dimensionCompression": "zstd", "metricCompression": "uncompressed"}, **extra}


def codecs(rt, segment) -> set[str]:
    with rt.storage.open_local(segment.load_spec) as path:
        meta = pq.read_metadata(path)
        return {meta.row_group(0).column(i).compression for i in range(meta.num_columns)}


def test_force_rewrites_every_segment_with_the_new_index_spec_and_a_converted_version(db_url, tmp_path):
    rt = Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")
    index.run(index_spec(rows()), rt)
    old = sorted(rt.store.used_segments("m"), key=lambda s: s.interval.start)
    before = table(rt).sort_by("__time")

    report = run_task(convert_spec(force=True), rt)

    new = sorted(rt.store.used_segments("m"), key=lambda s: s.interval.start)
    assert [s.version for s in new] == [s.version + "_converted" for s in old]
    assert [(s.interval, s.partition_num, s.shard_spec) for s in new] == [(s.interval, s.partition_num, s.shard_spec) for s in old]
    assert codecs(rt, new[0]) == {"ZSTD", "UNCOMPRESSED"}
    assert table(rt).sort_by("__time").equals(before)
    assert report["reports"]["convert"]["rowsCompared"] == sum(s.num_rows for s in old)
    assert {rt.store.get_segment(s.id).unused_reason for s in old} == {"overshadowed-by-convert"}
    assert TaskLockbox(rt.store.engine).locks(task_id=report["taskId"]) == []

    # Each run appends another suffix.
    run_task(convert_spec(force=True), rt)
    assert {s.version for s in rt.store.used_segments("m")} == {s.version + "_converted_converted" for s in old}


def test_without_force_current_binary_versions_are_left_alone(rt):
    index.run(index_spec(rows()), rt)
    old = {s.id for s in rt.store.used_segments("m")}
    report = run_task(convert_spec(), rt)
    assert report["segments"] == [] and {s.id for s in rt.store.used_segments("m")} == old
    assert set(report["reports"]["convert"]["skipped"]) == old
    assert convert.ConvertSegmentTask.parse(convert_spec()).priority == 0


def test_validation_failure_publishes_nothing_and_leaves_no_file(rt, monkeypatch):
    index.run(index_spec(rows()), rt)
    old = {s.id for s in rt.store.used_segments("m")}
    files_before = {key for key, _, _ in rt.storage.list_keys("")}
    real_write = convert.write_segment

    def lossy_write(table, path, segment, **options):  # a converter bug: the last row is lost
        return real_write(table.slice(0, table.num_rows - 1), path, segment, **options)

    monkeypatch.setattr(convert, "write_segment", lossy_write)
    with pytest.raises(convert.ConversionValidationError, match="row count"):
        run_task(convert_spec(force=True, id="convert_lossy"), rt)
    assert {s.id for s in rt.store.used_segments("m")} == old
    assert {key for key, _, _ in rt.storage.list_keys("")} == files_before
    assert rt.store.get_task("convert_lossy").status == "FAILED"
    assert TaskLockbox(rt.store.engine).locks(task_id="convert_lossy") == []


def test_validate_false_skips_the_comparison(rt, monkeypatch):
    index.run(index_spec(rows()), rt)
    monkeypatch.setattr(convert, "_validate", lambda *a: pytest.fail("validated although validate=false"))
    report = run_task(convert_spec(force=True, validate=False), rt)
    assert len(report["segments"]) == 3


def test_an_unknown_segment_is_refused_before_any_lock(rt):
    index.run(index_spec(rows()), rt)
    seg = rt.store.used_segments("m")[0].payload()
    ghost = {**seg, "version": "2020-01-01T00:00:00.000Z"}
    with pytest.raises(SpecError, match="no such segment") as err:
        run_task(convert_spec(segment=ghost, force=True), rt)
    assert err.value.path == "segment"
    assert TaskLockbox(rt.store.engine).locks(datasource="m") == []


def test_one_segment_can_be_converted_alone(rt):
    index.run(index_spec(rows()), rt)
    seg = sorted(rt.store.used_segments("m"), key=lambda s: s.interval.start)[1]
    report = run_task(convert_spec(segment=seg.payload(), force=True), rt)
    assert [s["version"] for s in report["segments"]] == [seg.version + "_converted"]
    with rt.storage.open_local(rt.store.used_segments("m")[0].load_spec) as path:
        assert read_segment(path).num_rows > 0
