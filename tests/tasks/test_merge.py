"""append, merge and same_interval_merge in-process: real metadata DBs, real Parquet segments made by index tasks."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from druidflow.exceptions import InputChangedError, LockRevokedError, SpecError
from druidflow.locks import TaskLockbox
from druidflow.query import visible_rows
from druidflow.specs.tasks import parse_task
from druidflow.tasks import index, merge, protocol
from druidflow.tasks.dispatch import run_task
from druidflow.tasks.runtime import Runtime
from tests.index_specs import index_task, json_lines

METRICS = [{"type": "count", "name": "count"}, {"type": "longSum", "name": "v", "fieldName": "v"}]


def rows(days=(1, 2, 3), per_day=6, offset=0):
    return [
        {"ts": f"2024-01-0{d}T{h:02d}:00:00Z", "d": f"k{h % 2}", "v": 10 * d + h + offset}
        for d in days
        for h in range(per_day)
    ]


def index_spec(data, *, ds="m", interval="2024-01-01/2024-01-04", priority=None):
    return index_task(
        data_source=ds, data=json_lines(data), timestamp_format="iso", metrics=METRICS, query_granularity="DAY", rollup=True,
        intervals=[interval], context=None if priority is None else {"priority": priority},
    )


@pytest.fixture
def rt(sqlite_url, tmp_path) -> Runtime:
    return Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")


def table(rt, ds="m") -> pa.Table:
    batches = list(visible_rows(rt.store, rt.storage, ds))
    return pa.Table.from_batches(batches)


def payloads(rt, ds="m"):
    return [s.payload() for s in sorted(rt.store.used_segments(ds), key=lambda s: s.interval.start)]


def live_locks(rt, task_id):
    return [lk for lk in TaskLockbox(rt.store.engine).locks(task_id=task_id) if lk.active]


# ------------------------------------------------------------------------------------------ the main paths


def test_merge_combines_rows_with_the_combining_aggregators_into_one_segment(db_url, tmp_path):
    rt = Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")
    index.run(index_spec(rows()), rt)
    inputs = rt.store.used_segments("m")
    assert len(inputs) == 3
    before = table(rt)
    spec = {"type": "merge", "dataSource": "m", "segments": payloads(rt), "aggregations": METRICS}

    report = run_task(spec, rt)

    [out] = rt.store.used_segments("m")
    assert str(out.interval) == "2024-01-01T00:00:00.000Z/2024-01-04T00:00:00.000Z"
    assert out.version > max(s.version for s in inputs)
    after = table(rt)
    # count re-applied as longSum of count: the totals are the original events, not rows
    assert pc.sum(after["count"]).as_py() == pc.sum(before["count"]).as_py() == 18
    assert pc.sum(after["v"]).as_py() == pc.sum(before["v"]).as_py()
    assert after.num_rows == before.num_rows == 6  # DAY query granularity: one row per (day, d)
    assert sorted(report["markedUnused"]) == sorted(s.id for s in inputs)
    records = [rt.store.get_segment(s.id) for s in inputs]
    assert {r.unused_reason for r in records} == {"overshadowed-by-merge"}
    task = rt.store.get_task(report["taskId"])
    assert task.status == "SUCCESS" and task.report["ingestionStatsAndErrors"]["payload"]["segmentsRead"] == 3
    assert live_locks(rt, report["taskId"]) == []


def test_merge_with_rollup_combines_equal_rows_across_segments(rt):
    index.run(index_spec(rows(days=(1,)), interval="2024-01-01/2024-01-02"), rt)
    index.run(index_spec(rows(days=(2,)), interval="2024-01-02/2024-01-03"), rt)
    spec = {"type": "merge", "dataSource": "m", "segments": payloads(rt), "aggregations": METRICS, "rollup": True}
    merged = merge.run(spec, rt)
    assert len(merged.segments) == 1 and merged.segments[0].num_rows == 4


def test_append_concatenates_adjacent_segments_without_rollup(rt):
    index.run(index_spec(rows(days=(1,)), interval="2024-01-01/2024-01-02"), rt)
    index.run(index_spec(rows(days=(2,)), interval="2024-01-02/2024-01-03"), rt)
    inputs = rt.store.used_segments("m")
    report = run_task({"type": "append", "dataSource": "m", "segments": payloads(rt)}, rt)
    [out] = rt.store.used_segments("m")
    assert out.num_rows == sum(s.num_rows for s in inputs) == 4
    assert str(out.interval) == "2024-01-01T00:00:00.000Z/2024-01-03T00:00:00.000Z"
    assert pc.sum(table(rt)["count"]).as_py() == 12
    assert out.rollup is False
    assert parse_task({"type": "append", "dataSource": "m", "segments": payloads(rt)}).priority == 25
    assert rt.store.get_segment(inputs[0].id).unused_reason == "overshadowed-by-append"
    assert report["status"] == "SUCCESS"


def test_same_interval_merge_takes_every_used_segment_of_the_interval(rt):
    index.run(index_spec(rows()), rt)
    spec = {"type": "same_interval_merge", "dataSource": "m", "interval": "2024-01-01/2024-01-04", "aggregations": METRICS}
    assert parse_task(spec).priority == 25
    report = run_task(spec, rt)
    [out] = rt.store.used_segments("m")
    assert report["segments"][0]["version"] == out.version
    assert pc.sum(table(rt)["count"]).as_py() == 18


# ------------------------------------------------------------------------------------------ bad input, before any lock


def test_append_of_non_adjacent_segments_is_refused_before_any_lock(rt):
    index.run(index_spec(rows(days=(1, 3))), rt)
    spec = {"type": "append", "dataSource": "m", "segments": payloads(rt)}
    with pytest.raises(SpecError, match="not adjacent") as err:
        run_task(spec, rt)
    assert err.value.path == "segments[1].interval"
    assert TaskLockbox(rt.store.engine).locks(datasource="m") == []
    assert len(rt.store.used_segments("m")) == 2


def test_an_unknown_segment_id_is_refused_naming_it(rt):
    index.run(index_spec(rows(days=(1,)), interval="2024-01-01/2024-01-02"), rt)
    [seg] = payloads(rt)
    ghost = {**seg, "version": "2020-01-01T00:00:00.000Z"}
    with pytest.raises(SpecError, match="no such segment") as err:
        run_task({"type": "merge", "dataSource": "m", "segments": [seg, ghost], "aggregations": METRICS}, rt)
    assert err.value.path == "segments[1]"


def test_a_segment_of_another_datasource_is_refused(rt):
    index.run(index_spec(rows(days=(1,)), interval="2024-01-01/2024-01-02"), rt)
    [seg] = payloads(rt)
    with pytest.raises(SpecError) as err:
        run_task({"type": "merge", "dataSource": "other", "segments": [seg], "aggregations": METRICS}, rt)
    assert err.value.path == "segments[0].dataSource"


def test_listing_only_some_used_segments_of_the_umbrella_interval_is_refused(rt):
    index.run(index_spec(rows()), rt)
    day1, _day2, day3 = payloads(rt)  # the umbrella of day 1 and day 3 holds day 2's used segment too
    with pytest.raises(SpecError, match="more than the listed ones") as err:
        run_task({"type": "merge", "dataSource": "m", "segments": [day1, day3], "aggregations": METRICS}, rt)
    assert err.value.path == "segments"
    assert TaskLockbox(rt.store.engine).locks(datasource="m") == []


# ------------------------------------------------------------------------------------------ locks and failures


def _steps_until_built(spec, rt):
    task = protocol.submit(spec, rt)
    protocol.acquire_locks(task, rt)
    the_plan = protocol.plan(task, rt)
    results = [protocol.build(task, the_plan, u, rt) for u in merge.DEFINITION.build_units(the_plan)]
    return task, the_plan, results


def test_a_concurrent_index_at_priority_50_preempts_a_merge_at_25(rt):
    index.run(index_spec(rows()), rt)
    before = {s.id for s in rt.store.used_segments("m")}
    spec = {"type": "merge", "dataSource": "m", "segments": payloads(rt), "aggregations": METRICS}
    task, the_plan, results = _steps_until_built(spec, rt)

    reindex = index.run(index_spec(rows(offset=1000)), rt)  # priority 50 revokes the merge's lock
    with pytest.raises(LockRevokedError):
        protocol.publish(task, the_plan, results, rt)
    protocol.fail(task.task_id, "revoked", rt)
    protocol.release(task.task_id, rt)
    assert {s.id for s in rt.store.used_segments("m")} == {s.id for s in reindex.segments}
    assert not {s.id for s in rt.store.used_segments("m")} & before
    assert live_locks(rt, task.task_id) == []
    # the merge's pushed file was deleted: no row can ever point at it
    assert not any(rt.storage.exists(s.load_spec) for r in results for s in r.segments)


def test_a_merge_at_25_waits_for_an_index_at_50(rt):
    index.run(index_spec(rows()), rt)
    holder = index.submit(index_spec(rows(offset=7)), rt)
    index.acquire_locks(holder, rt)
    spec = {"type": "merge", "dataSource": "m", "segments": payloads(rt), "aggregations": METRICS}
    from druidflow.exceptions import LockUnavailableError

    task = protocol.submit(spec, rt)
    with pytest.raises(LockUnavailableError):
        protocol.acquire_locks(task, rt)
    assert live_locks(rt, task.task_id) == [] and live_locks(rt, holder.task_id)


def test_a_failure_in_the_middle_publishes_nothing_and_releases_the_locks(rt):
    index.run(index_spec(rows()), rt)
    inputs = rt.store.used_segments("m")
    rt.storage.delete(inputs[1].load_spec)  # a segment file vanishes: the build cannot read it
    spec = {"type": "merge", "dataSource": "m", "segments": payloads(rt), "aggregations": METRICS, "id": "merge_broken"}
    with pytest.raises(Exception):  # noqa: B017 - any failure will do; the test is that nothing is published
        run_task(spec, rt)
    assert sorted(s.id for s in rt.store.used_segments("m")) == sorted(s.id for s in inputs)
    assert rt.store.get_task("merge_broken").status == "FAILED"
    assert live_locks(rt, "merge_broken") == []


def test_input_changed_after_planning_fails_the_publish(rt):
    index.run(index_spec(rows()), rt)
    inputs = rt.store.used_segments("m")
    spec = {"type": "merge", "dataSource": "m", "segments": payloads(rt), "aggregations": METRICS}
    task, the_plan, results = _steps_until_built(spec, rt)
    rt.store.mark_unused("m", segment_ids=[inputs[0].id], reason="dropped-by-user")
    with pytest.raises(InputChangedError, match="changed after it was planned"):
        protocol.publish(task, the_plan, results, rt)
    assert len(rt.store.used_segments("m")) == 2


def test_a_non_default_write_out_medium_is_refused_naming_the_field(rt):
    index.run(index_spec(rows(days=(1,)), interval="2024-01-01/2024-01-02"), rt)
    spec = {"type": "append", "dataSource": "m", "segments": payloads(rt), "segmentWriteOutMediumFactory": {"type": "offHeapMemory"}}
    with pytest.raises(SpecError) as err:
        run_task(spec, rt)
    assert err.value.path == "segmentWriteOutMediumFactory"
