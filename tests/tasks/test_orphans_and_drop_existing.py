"""The orphan sweep decides under the lockbox mutex with the database's clock and a grace period; ``dropExisting``
on an index task tombstones the chunks of its intervals that get no rows. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
import time

import pyarrow as pa
import pytest

from druidflow.intervals import now_ms
from druidflow.locks import TaskLockbox
from druidflow.query import visible_rows
from druidflow.tasks import index
from druidflow.tasks.orphans import sweep_orphans
from druidflow.tasks.runtime import Runtime
from tests.index_specs import index_task, json_lines

DS = "o"


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def spec(task_id: str, rows: list[tuple[str, str]], *, intervals=("2024-01-01/2024-01-03",), **io) -> dict:
    data = json_lines({"ts": t, "d": d} for t, d in rows)
    return index_task(data_source=DS, task_id=task_id, data=data, query_granularity="NONE", intervals=intervals, io=io)


def built_not_published(rt: Runtime, task_id: str):
    task = index.submit(spec(task_id, [("2024-01-01T01:00:00Z", "a")]), rt)
    index.acquire_locks(task, rt)
    plan = index.determine_partitions(task, rt)
    return task, plan, index.build_units(task, plan.build_units, rt)


def age(rt: Runtime, load_spec: dict, seconds: float) -> None:
    path = load_spec["path"]
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_a_sweep_with_its_clock_ahead_never_deletes_a_live_builds_file(rt):
    task, plan, built = built_not_published(rt, "index_live")
    (segment,) = built.segments
    age(rt, segment.load_spec, 7200)  # a long build: its file was pushed two hours ago
    # The machine running the sweep has a clock 3 minutes ahead: by it, the build's 2-minute lease ran out.
    skewed = TaskLockbox(rt.lockbox.engine, clock=lambda: now_ms() + 180_000)
    report = sweep_orphans(dataclasses.replace(rt, lockbox=skewed), DS, delete=True, grace_seconds=60)
    assert report.deleted == 0
    assert rt.storage.exists(segment.load_spec)
    index.publish(task, plan, [built], rt)  # the publish then points at the file, which is still there
    rows = pa.Table.from_batches(list(visible_rows(rt.store, rt.storage, DS)))
    assert rows["d"].to_pylist() == ["a"]


def test_a_sweep_keeps_orphans_younger_than_the_grace_period(rt):
    task, _plan, built = built_not_published(rt, "index_dead")
    index.release(task.task_id, rt)  # the task died before publishing: its file is an orphan
    (segment,) = built.segments
    report = sweep_orphans(rt, DS, delete=True)
    assert report.deleted == 0 and [o.state for o in report.orphans] == ["recent"]
    age(rt, segment.load_spec, 7200)
    report = sweep_orphans(rt, DS, delete=True)
    assert report.deleted == 1 and not rt.storage.exists(segment.load_spec)


def test_a_sweep_rechecks_each_file_against_the_rows_under_the_mutex(rt, monkeypatch):
    task, plan, built = built_not_published(rt, "index_race")
    (segment,) = built.segments
    age(rt, segment.load_spec, 7200)
    rt.lockbox.release_all(task.task_id)
    # Between the sweep's listing and its decision, the file gets published (simulated: a row pointing at it).
    import druidflow.tasks.orphans as orphans

    real_sweep = orphans._sweep

    def listing_then_publish(rt_, data_source):
        report = real_sweep(rt_, data_source)
        rt.store.publish_segments([segment.model_copy(update={"shard_spec": segment.shard_spec})])
        return report

    monkeypatch.setattr(orphans, "_sweep", listing_then_publish)
    report = sweep_orphans(rt, DS, delete=True, grace_seconds=0)
    assert report.deleted == 0 and [o.state for o in report.orphans] == ["published"]
    assert rt.storage.exists(segment.load_spec)


def test_drop_existing_tombstones_the_chunks_that_get_no_rows(rt):
    index.run(spec("first", [("2024-01-01T01:00:00Z", "a"), ("2024-01-02T01:00:00Z", "b")]), rt)
    index.run(spec("second", [("2024-01-01T05:00:00Z", "c")], dropExisting=True), rt)
    rows = pa.Table.from_batches(list(visible_rows(rt.store, rt.storage, DS)))
    assert rows["d"].to_pylist() == ["c"]  # day 2 got no row: its old data is dropped, as Druid's REPLACE mode does
    used = rt.store.used_segments(DS)
    assert sorted(s.shard_spec.type for s in used) == ["numbered", "tombstone"]
    assert all(not r.used for r in rt.store.segments(DS, include_unused=True) if r.segment.version < used[0].version)


def test_without_drop_existing_chunks_without_rows_keep_their_data(rt):
    index.run(spec("first", [("2024-01-01T01:00:00Z", "a"), ("2024-01-02T01:00:00Z", "b")]), rt)
    index.run(spec("second", [("2024-01-01T05:00:00Z", "c")]), rt)
    rows = pa.Table.from_batches(list(visible_rows(rt.store, rt.storage, DS)))
    assert sorted(rows["d"].to_pylist()) == ["b", "c"]


def test_pending_segments_are_deleted_when_an_appending_task_fails(rt):
    index.run(spec("first", [("2024-01-01T01:00:00Z", "a")]), rt)
    task = index.submit(spec("app", [("2024-01-01T02:00:00Z", "b")], appendToExisting=True), rt)
    index.acquire_locks(task, rt)
    plan = index.determine_partitions(task, rt)
    index.build_units(task, plan.build_units, rt)
    assert len(rt.store.pending_segments(DS)) == 1
    index.fail(task.task_id, "boom", rt)
    assert rt.store.pending_segments(DS) == []
