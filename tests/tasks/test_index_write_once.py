"""Published files are never changed: every push attempt writes its own key, create-only, after checking the lock;
an attempt whose publish definitely failed leaves no file behind; one whose outcome is unknown keeps its files.
Local deep storage and S3 (moto server over HTTP), SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from druidflow.exceptions import LockRevokedError
from druidflow.query import visible_rows
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.index_specs import COUNT_AND_SUM_V, index_task

DS = "w"


@pytest.fixture(params=["local", "s3"])
def rt(request, db_url, tmp_path) -> Runtime:
    if request.param == "local":
        return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")
    server = request.getfixturevalue("s3_server")
    import dataclasses

    from druidflow.storage import deep_storage_from_uri

    base = Runtime.from_urls(db_url, str(tmp_path / "unused"), tmp_path / "work")
    storage = deep_storage_from_uri(f"s3://{server.make_bucket()}/deep", **server.options)
    return dataclasses.replace(base, storage=storage)


def write_input(path, rows: list[tuple[str, str, int]]) -> None:
    path.write_text("".join(json.dumps({"ts": ts, "d": d, "v": v}) + "\n" for ts, d, v in rows))


def spec(input_dir, task_id: str = "index_w_1", **io) -> dict:
    source = {"type": "local", "baseDir": str(input_dir), "filter": "*.json"}
    return index_task(data_source=DS, task_id=task_id, input_source=source, metrics=COUNT_AND_SUM_V, io=io)


def files(rt: Runtime) -> dict[str, str]:
    """Every stored file's key and content hash."""
    out = {}
    for key, _size, load_spec in rt.storage.list_keys(f"{DS}/"):
        with rt.storage.open_local(load_spec) as path:
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def visible(rt: Runtime) -> list[tuple]:
    batches = list(visible_rows(rt.store, rt.storage, DS))
    table = pa.Table.from_batches(batches)
    return sorted(zip(table["d"].to_pylist(), table["v"].to_pylist()))


def planned(rt: Runtime, tmp_path, rows: list[tuple[str, str, int]]):
    """An index task over one input file of ``rows``, submitted, locked and planned: (input dir, task, plan)."""
    data = tmp_path / "in"
    data.mkdir()
    write_input(data / "a.json", rows)
    task = index.submit(spec(data), rt)
    index.acquire_locks(task, rt)
    return data, task, index.determine_partitions(task, rt)


def test_a_build_rerun_after_publish_changes_no_published_file(rt, tmp_path):
    data, task, plan = planned(rt, tmp_path, [("2024-01-01T01:00:00Z", "x", 1), ("2024-01-02T01:00:00Z", "y", 2)])
    first = index.build_units(task, plan.build_units, rt)
    published = index.publish(task, plan, [first], rt)
    before_files, before_rows = files(rt), visible(rt)
    assert before_rows == [("x", 1), ("y", 2)]

    # The input changes and the build runs again under the same locks (an Airflow retry or a cleared task).
    write_input(data / "a.json", [("2024-01-01T01:00:00Z", "x", 100), ("2024-01-02T01:00:00Z", "y", 200)])
    again = index.build_units(task, plan.build_units, rt)
    assert {s.id for s in again.segments} == {s.id for s in published.segments}
    assert {json.dumps(s.load_spec) for s in again.segments}.isdisjoint(json.dumps(s.load_spec) for s in published.segments)
    after = files(rt)
    assert len(after) == 2 * len(before_files)
    assert all(after[k] == h for k, h in before_files.items())  # no published file was touched
    assert visible(rt) == before_rows

    # Publishing the re-run finds its ids already published: that publish stands, the new files are removed.
    report = index.publish(task, plan, [again], rt)
    assert report.status == "SUCCESS"
    assert [s.load_spec for s in report.segments] == [s.load_spec for s in published.segments]
    assert files(rt) == before_files
    assert visible(rt) == before_rows
    index.release(task.task_id, rt)


def test_a_build_under_a_revoked_lock_pushes_nothing(rt, tmp_path):
    data, task, plan = planned(rt, tmp_path, [("2024-01-01T01:00:00Z", "x", 1)])
    assert rt.lockbox.try_lock("kill_w", datasource=DS, interval="2024-01-01/2024-01-03", priority=99).acquired
    with pytest.raises(LockRevokedError):
        index.build_units(task, plan.build_units, rt)
    assert files(rt) == {}


def test_a_publish_that_definitely_failed_deletes_its_files(rt, tmp_path):
    data, task, plan = planned(rt, tmp_path, [("2024-01-01T01:00:00Z", "x", 1), ("2024-01-02T01:00:00Z", "y", 2)])
    built = index.build_units(task, plan.build_units, rt)
    assert len(files(rt)) == 2
    assert rt.lockbox.try_lock("kill_w", datasource=DS, interval="2024-01-01/2024-01-03", priority=99).acquired
    with pytest.raises(LockRevokedError):
        index.publish(task, plan, [built], rt)
    assert files(rt) == {}
    assert rt.store.used_segments(DS) == []


def test_a_publish_whose_outcome_is_unknown_keeps_its_files(rt, tmp_path, monkeypatch):
    data, task, plan = planned(rt, tmp_path, [("2024-01-01T01:00:00Z", "x", 1)])
    built = index.build_units(task, plan.build_units, rt)

    def connection_lost(*args, **kwargs):
        raise ConnectionError("server closed the connection unexpectedly")

    monkeypatch.setattr(rt.store, "publish_segments", connection_lost)
    with pytest.raises(ConnectionError):
        index.publish(task, plan, [built], rt)
    assert len(files(rt)) == 1  # maybe published: a retry of the publish needs the file
    monkeypatch.undo()
    index.publish(task, plan, [built], rt)
    assert visible(rt) == [("x", 1)]


def test_an_appending_task_published_twice_adds_its_rows_once(rt, tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    write_input(data / "a.json", [("2024-01-01T01:00:00Z", "x", 1)])
    index.run(spec(data, task_id="index_w_base"), rt)
    task = index.submit(spec(data, task_id="index_w_append", appendToExisting=True), rt)
    index.acquire_locks(task, rt)
    plan = index.determine_partitions(task, rt)
    index.publish(task, plan, [index.build_units(task, plan.build_units, rt)], rt)
    index.release(task.task_id, rt)
    assert rt.store.pending_segments(DS) == []  # forgotten once the task is over
    # A cleared run: the locks are taken again and the build re-runs with fresh segment ids.
    index.acquire_locks(task, rt)
    plan = index.determine_partitions(task, rt)
    index.publish(task, plan, [index.build_units(task, plan.build_units, rt)], rt)
    index.release(task.task_id, rt)
    assert visible(rt) == [("x", 1), ("x", 1)]
    assert len(files(rt)) == 2
    assert pc.sum(pa.Table.from_batches(list(visible_rows(rt.store, rt.storage, DS)))["count"]).as_py() == 2
