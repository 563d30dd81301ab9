"""Concurrent append and replace (``useConcurrentLocks``): rows appended under an APPEND lock while a REPLACE-locked
task overwrites or compacts the same interval are never lost, whichever task commits first (Druid's segment
upgrade). SQLite and PostgreSQL."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from druidflow.exceptions import SpecError
from druidflow.query import visible_rows
from druidflow.tasks import compact, index
from druidflow.tasks.runtime import Runtime
from tests.index_specs import index_task, json_lines

DS = "c"
DAY = "2024-01-01/2024-01-02"


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def spec(task_id: str, rows: list[tuple[str, str]], *, append: bool, concurrent: bool = True) -> dict:
    return index_task(
        data_source=DS, task_id=task_id, data=json_lines({"ts": ts, "d": d} for ts, d in rows), query_granularity="NONE",
        rollup=False, intervals=[DAY], io={"appendToExisting": append}, context={"useConcurrentLocks": concurrent},
    )


def rows(n: int, tag: str) -> list[tuple[str, str]]:
    return [(f"2024-01-01T{i % 24:02d}:00:00Z", tag) for i in range(n)]


def visible(rt: Runtime) -> dict[str, int]:
    batches = list(visible_rows(rt.store, rt.storage, DS))
    if not batches:
        return {}
    table = pa.Table.from_batches(batches)
    counts = pc.value_counts(table["d"])
    return {v["values"].as_py(): v["counts"].as_py() for v in counts}


class Steps:
    """An index task run step by step, so that two tasks can interleave."""

    def __init__(self, rt: Runtime, spec_dict: dict) -> None:
        self.rt = rt
        self.task = index.submit(spec_dict, rt)

    def lock_and_build(self) -> Steps:
        index.acquire_locks(self.task, self.rt)
        self.plan = index.determine_partitions(self.task, self.rt)
        self.result = index.build_units(self.task, self.plan.build_units, self.rt)
        return self

    def publish(self) -> index.IndexReport:
        try:
            return index.publish(self.task, self.plan, [self.result], self.rt)
        finally:
            index.release(self.task.task_id, self.rt)


def test_an_append_lock_appends_into_a_chunk_that_has_data(rt):
    index.run(spec("base", rows(5, "base"), append=False, concurrent=False), rt)
    report = index.run(spec("app", rows(3, "app"), append=True), rt)
    assert report.status == "SUCCESS"
    assert visible(rt) == {"base": 5, "app": 3}


def test_append_committing_before_the_replace_is_upgraded_into_the_new_version(rt):
    index.run(spec("base", rows(5, "base"), append=False, concurrent=False), rt)
    replace = Steps(rt, spec("replace", rows(7, "new"), append=False)).lock_and_build()
    assert replace.task.lock_type == "REPLACE"
    appended = index.run(spec("app", rows(3, "app"), append=True), rt)  # APPEND lock next to the REPLACE lock
    assert appended.status == "SUCCESS"
    assert visible(rt) == {"base": 5, "app": 3}
    assert len(rt.store.pending_upgrades(DS)) == 1
    replace.publish()
    # The old data is replaced; the concurrently appended rows survive in the new version.
    assert visible(rt) == {"new": 7, "app": 3}
    assert rt.store.pending_upgrades(DS) == []
    versions = {s.version for s in rt.store.visible_segments(DS)}
    assert versions == {replace.plan.chunks[0].version}


def test_append_committing_after_the_replace_is_upgraded_at_its_own_commit(rt):
    index.run(spec("base", rows(5, "base"), append=False, concurrent=False), rt)
    app = Steps(rt, spec("app", rows(3, "app"), append=True)).lock_and_build()  # allocated in the old version
    replace = Steps(rt, spec("replace", rows(7, "new"), append=False)).lock_and_build()
    replace.publish()
    assert visible(rt) == {"new": 7}
    app.publish()
    assert visible(rt) == {"new": 7, "app": 3}


def test_a_compaction_and_a_concurrent_append_never_lose_rows(rt):
    index.run(spec("base", rows(5, "base"), append=False, concurrent=False), rt)
    index.run(spec("app0", rows(2, "early"), append=True), rt)
    compact_spec = {
        "type": "compact",
        "id": "compact_c",
        "dataSource": DS,
        "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": DAY}},
        "context": {"useConcurrentLocks": True},
    }
    # Appends commit while the compaction holds its REPLACE lock, after it planned (before and after its build).
    task = compact.submit(compact_spec, rt)
    compact.acquire_locks(task, rt)
    plan = compact.plan(task, rt)
    index.run(spec("app1", rows(3, "late"), append=True), rt)
    built = compact.build_all(plan, rt)  # reads exactly the planned input, not the appended segment
    index.run(spec("app1b", rows(1, "later1"), append=True), rt)
    report = compact.publish(plan, [built], rt)
    compact.release(task.task_id, rt)
    assert report.status == "SUCCESS"
    assert visible(rt) == {"base": 5, "early": 2, "late": 3, "later1": 1}
    assert {s.version for s in rt.store.visible_segments(DS)} == {plan.lock_version}

    # Append allocated before the compaction, committed after it.
    app = Steps(rt, spec("app2", rows(4, "later"), append=True)).lock_and_build()
    report = compact.run({**compact_spec, "id": "compact_c2"}, rt)
    assert report.status == "SUCCESS"
    app.publish()
    assert visible(rt) == {"base": 5, "early": 2, "late": 3, "later1": 1, "later": 4}


def test_an_append_while_a_compaction_plans_is_read_or_upgraded_never_both(rt):
    index.run(spec("base", rows(5, "base"), append=False, concurrent=False), rt)
    compact_spec = {
        "type": "compact",
        "id": "compact_d",
        "dataSource": DS,
        "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": DAY}},
        "context": {"useConcurrentLocks": True},
    }
    task = compact.submit(compact_spec, rt)
    compact.acquire_locks(task, rt)
    index.run(spec("app", rows(3, "app"), append=True), rt)  # after the lock, before the plan reads the input
    plan = compact.plan(task, rt)
    compact.publish(plan, [compact.build_all(plan, rt)], rt)
    compact.release(task.task_id, rt)
    assert visible(rt) == {"base": 5, "app": 3}


def test_killing_the_replaced_version_keeps_the_file_an_upgraded_copy_shares(rt):
    from druidflow.tasks import kill
    from druidflow.tasks.orphans import sweep_orphans

    index.run(spec("base", rows(5, "base"), append=False, concurrent=False), rt)
    replace = Steps(rt, spec("replace", rows(7, "new"), append=False)).lock_and_build()
    index.run(spec("app", rows(3, "app"), append=True), rt)
    replace.publish()
    unused = rt.store.unused_segments(DS)
    assert unused  # the base segment and the appended original are overshadowed
    kill.run({"type": "kill", "dataSource": DS, "interval": DAY}, rt, dry_run=False)
    assert rt.store.unused_segments(DS) == []
    sweep_orphans(rt, DS, delete=True, grace_seconds=0)
    assert visible(rt) == {"new": 7, "app": 3}  # the copy's file, shared with the killed original, is still there


def test_entries_of_a_replace_that_never_published_are_forgotten(rt):
    index.run(spec("base", rows(5, "base"), append=False, concurrent=False), rt)
    replace = Steps(rt, spec("replace", rows(7, "new"), append=False)).lock_and_build()
    index.run(spec("app", rows(3, "app"), append=True), rt)
    assert len(rt.store.pending_upgrades(DS)) == 1
    index.fail(replace.task.task_id, "gave up", rt)
    index.release(replace.task.task_id, rt)
    index.run(spec("app2", rows(2, "app2"), append=True), rt)
    assert rt.store.pending_upgrades(DS) == []
    assert visible(rt) == {"base": 5, "app": 3, "app2": 2}


def test_reindexing_an_interval_of_its_own_segments_under_concurrent_locks_is_refused(rt):
    reindex = spec("re", [], append=False)
    reindex["spec"]["ioConfig"]["inputSource"] = {"type": "druid", "dataSource": DS, "interval": DAY}
    with pytest.raises(SpecError, match="inputSource.interval"):
        index.submit(reindex, rt)
