"""The compact task end to end, in-process: real metadata DBs (SQLite and PostgreSQL) and real Parquet files.

Segments to compact are made by real index tasks (appends, HOUR chunks, overwrites), so their versions, shard specs
and aggregators are what production has.
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from druidflow.exceptions import InputChangedError, LockRevokedError, NoSegmentsError, SpecError
from druidflow.intervals import Interval
from druidflow.query import visible_rows
from druidflow.tasks import compact, index
from druidflow.tasks.compact import OVERSHADOWED_BY_COMPACTION, sha256_of_segment_ids
from druidflow.tasks.dispatch import run_task
from druidflow.tasks.index import BuildResult, BuildUnit
from druidflow.tasks.runtime import Runtime
from tests.index_specs import index_task, json_lines

DAY = "2024-01-01/2024-01-02"
METRICS = [
    {"type": "count", "name": "count"},
    {"type": "longSum", "name": "v", "fieldName": "v"},
    {"type": "doubleMax", "name": "vmax", "fieldName": "v"},
    {"type": "longMin", "name": "vmin", "fieldName": "v"},
    {"type": "longFirst", "name": "vfirst", "fieldName": "v"},
    {"type": "longLast", "name": "vlast", "fieldName": "v"},
]


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def index_spec(rows, *, ds="t", append=True, seg="DAY", query="HOUR", dims=("d", {"type": "long", "name": "n"}),
               metrics=None, rollup=True, interval="2024-01-01/2024-01-03") -> dict:
    return index_task(
        data_source=ds, data=json_lines(rows), timestamp_format="iso", dimensions=dims, metrics=metrics if metrics is not None else METRICS,
        segment_granularity=seg, query_granularity=query, rollup=rollup, intervals=[interval], io={"appendToExisting": append},
    )


def batch(i: int, hours=range(24)) -> list[dict]:
    """Rows of append number ``i``: one per hour, minute ``i`` (so the first/last of each hour is known)."""
    return [{"ts": f"2024-01-01T{h:02d}:{i:02d}:00Z", "d": f"k{h % 3}", "n": h % 2, "v": 100 * i + h} for h in hours]


def rows_of(rt: Runtime, ds: str = "t", interval: str | None = None) -> pa.Table:
    batches = list(visible_rows(rt.store, rt.storage, ds, Interval.parse(interval) if interval else None))
    return pa.Table.from_batches(batches) if batches else pa.table({})


def compact_spec(interval: str = DAY, ds: str = "t", **extra) -> dict:
    return {"type": "compact", "dataSource": ds, "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": interval}}, **extra}


def totals(table: pa.Table) -> dict:
    return {
        "count": pc.sum(table["count"]).as_py(),
        "v": pc.sum(table["v"]).as_py(),
        "vmax": pc.max(table["vmax"]).as_py(),
        "vmin": pc.min(table["vmin"]).as_py(),
    }


def per_key(table: pa.Table, column: str) -> dict:
    rows = table.select(["__time", "d", "n", column]).to_pylist()
    return {(str(r["__time"]), r["d"], r["n"]): r[column] for r in rows}


def files_under(rt: Runtime) -> set[str]:
    return {key for key, _, _ in rt.storage.list_keys("")}


# ------------------------------------------------------------------------------------------ the main path


def test_many_small_appended_segments_of_a_day_become_one(rt):
    appends = 12
    for i in range(appends):
        index.run(index_spec(batch(i)), rt)
    inputs = rt.store.used_segments("t")
    assert len(inputs) == appends and len({s.version for s in inputs}) == 1  # one version, 12 partitions
    before = rows_of(rt)

    report = compact.run(compact_spec(), rt)

    after = rows_of(rt)
    [out] = rt.store.used_segments("t")
    assert report.segments == [out] and out.version > inputs[0].version
    assert str(out.interval) == "2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z"
    # Every metric total is preserved: count is a sum of counts (12 appends x 24 rows), not a count of rows.
    assert totals(after) == totals(before) == {"count": appends * 24, "v": sum(100 * i + h for i in range(appends) for h in range(24)),
                                               "vmax": 100 * (appends - 1) + 23, "vmin": 0}
    # Rows roll up to one per (hour, d, n): the 12 appends of an hour become one row counting 12 events.
    assert after.num_rows == out.num_rows == 24
    assert set(pc.unique(after["count"]).to_pylist()) == {appends}
    # first/last keep the earliest/latest event's value across all the appended segments (minute i of append i).
    firsts = {r["__time"].hour: r["vfirst"] for r in after.select(["__time", "vfirst"]).to_pylist()}
    lasts = {r["__time"].hour: r["vlast"] for r in after.select(["__time", "vlast"]).to_pylist()}
    assert firsts == {h: h for h in range(24)}
    assert lasts == {h: 100 * (appends - 1) + h for h in range(24)}

    # The inputs are unused, with the reason a later kill can read; the output records its compaction state.
    records = {r.segment.id: r for r in rt.store.segments("t", include_unused=True)}
    assert {sid for sid, r in records.items() if not r.used} == {s.id for s in inputs} == set(report.marked_unused)
    assert {records[s.id].unused_reason for s in inputs} == {OVERSHADOWED_BY_COMPACTION}
    state = out.last_compaction_state
    assert state["granularitySpec"] == {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "rollup": True}
    assert state["metricsSpec"][0] == {"type": "longSum", "name": "count", "fieldName": "count"}
    assert state["partitionsSpec"]["type"] == "dynamic" and state["indexSpec"]["dimensionCompression"] == "lz4"
    assert len(state["fingerprint"]) == 64
    payload = rt.store.get_task(report.task_id).report["ingestionStatsAndErrors"]["payload"]
    assert rt.store.get_task(report.task_id).status == "SUCCESS"
    assert payload["segmentsRead"] == appends and payload["segmentsPublished"] == 1
    assert payload["rowStats"]["buildSegments"]["processed"] == appends * 24
    assert rt.lockbox.locks(datasource="t") == []


def test_segment_granularity_hour_to_day(rt):
    index.run(index_spec(batch(0), seg="HOUR", append=False), rt)
    index.run(index_spec(batch(1), seg="HOUR"), rt)
    hourly = rt.store.used_segments("t")
    assert len(hourly) == 48 and {s.interval.duration for s in hourly} == {3_600_000}
    before = rows_of(rt)

    report = compact.run(compact_spec(segmentGranularity="DAY"), rt)

    [out] = rt.store.used_segments("t")
    assert out.interval == Interval.parse(DAY) and report.segments == [out]
    after = rows_of(rt)
    assert totals(after) == totals(before) and after.num_rows == 24
    assert out.last_compaction_state["granularitySpec"]["segmentGranularity"] == "DAY"
    assert sorted(report.marked_unused) == sorted(s.id for s in hourly)

    # and back, with the modern granularitySpec form: DAY -> HOUR chunks
    compact.run(compact_spec(granularitySpec={"segmentGranularity": "HOUR"}), rt)
    hours = rt.store.used_segments("t")
    assert len(hours) == 24 and all(s.interval.duration == 3_600_000 for s in hours)
    assert totals(rows_of(rt)) == totals(before)


def test_keeping_granularity_compacts_a_partly_overshadowed_day_into_what_was_visible(rt):
    index.run(index_spec(batch(0), append=False), rt)  # DAY v1
    index.run(index_spec(batch(5, hours=range(6)), seg="HOUR", append=False, interval="2024-01-01T00:00/2024-01-01T06:00"), rt)
    before = rows_of(rt)
    assert before.num_rows == 24 and pc.sum(before["count"]).as_py() == 24  # hours 0-5 come from the HOUR version

    # 05:00-07:00 sees one HOUR segment and the DAY segment: widened to the day, which brings in every HOUR segment
    report = compact.run(compact_spec("2024-01-01T05:00/2024-01-01T07:00"), rt)

    assert report.read_interval == Interval.parse(DAY)
    [out] = rt.store.used_segments("t")
    assert out.interval == Interval.parse(DAY)
    after = rows_of(rt)
    assert per_key(after, "v") == per_key(before, "v")
    assert len(report.marked_unused) == 1 + 6  # the DAY segment and the six HOUR segments


def test_inference_dimensions_newest_first_with_types_rollup_and_finest_query_granularity(rt):
    index.run(index_spec(batch(0, hours=[1]), ds="t", dims=["d"], query="HOUR", append=False,
                         interval="2024-01-01/2024-01-02"), rt)
    index.run(index_spec([{"ts": "2024-01-02T05:30:00Z", "e": 2.5, "n": 7, "d": "x", "v": 1}], dims=[{"type": "double", "name": "e"}, "d", {"type": "long", "name": "n"}],
                         query="MINUTE", rollup=False, append=False, interval="2024-01-02/2024-01-03"), rt)

    task = compact.submit(compact_spec("2024-01-01/2024-01-03"), rt)
    compact.acquire_locks(task, rt)
    plan = compact.plan(task, rt)
    schema = plan.index_task["spec"]["dataSchema"]
    # The newest segment (Jan 2) names its dimensions first, with their types; older ones add theirs after.
    assert schema["dimensionsSpec"]["dimensions"] == [{"type": "double", "name": "e"}, "d", {"type": "long", "name": "n"}]
    assert schema["granularitySpec"]["rollup"] is False  # one input was not rolled up
    assert schema["granularitySpec"]["queryGranularity"] == "MINUTE"  # the finest of HOUR and MINUTE
    assert schema["metricsSpec"][0] == {"type": "longSum", "name": "count", "fieldName": "count"}
    assert {"type": "longFirst", "name": "vfirst", "fieldName": "vfirst", "timeColumn": "__time_vfirst"} in schema["metricsSpec"]
    assert set(plan.inferred) == {"dimensionsSpec", "metricsSpec", "rollup", "queryGranularity", "segmentGranularity"}
    result = compact.build_all(plan, rt)
    compact.publish(plan, [result], rt)
    compact.release(task.task_id, rt)
    after = rows_of(rt)
    assert pc.sum(after["count"]).as_py() == 2 and sorted(pc.drop_null(after["e"]).to_pylist()) == [2.5]


def test_metrics_that_disagree_need_an_explicit_metrics_spec(rt):
    index.run(index_spec(batch(0), metrics=[{"type": "longSum", "name": "v", "fieldName": "v"}], append=False), rt)
    index.run(index_spec(batch(1), metrics=[{"type": "doubleSum", "name": "v", "fieldName": "v"}], append=True), rt)
    with pytest.raises(SpecError, match="give an explicit metricsSpec"):
        compact.run(compact_spec(), rt)
    assert len(rt.store.used_segments("t")) == 2  # nothing changed

    # metricsSpec is used as given (Druid >= 0.23): here it also renames the metric
    report = compact.run(compact_spec(metricsSpec=[{"type": "doubleSum", "name": "total", "fieldName": "v"}]), rt)
    [out] = report.segments
    assert out.metric_names == ["total"]
    assert pc.sum(rows_of(rt)["total"]).as_py() == sum(range(24)) + sum(100 + h for h in range(24))


def test_given_dimensions_and_query_granularity_and_target_rows(rt):
    for i in range(3):
        index.run(index_spec(batch(i)), rt)
    spec = compact_spec(
        dimensionsSpec={"dimensions": ["d"]},
        granularitySpec={"queryGranularity": "DAY"},
        tuningConfig={"type": "index_parallel", "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 2}},
    )
    report = compact.run(spec, rt)
    after = rows_of(rt)
    assert after.num_rows == 3  # one row per d for the whole day
    assert pc.sum(after["count"]).as_py() == 72
    assert sorted(s.num_rows for s in report.segments) == [1, 2]  # maxRowsPerSegment 2: two partitions
    assert {s.shard_spec.partitions for s in report.segments} == {2}  # one core set, published atomically
    assert report.segments[0].last_compaction_state["partitionsSpec"]["maxRowsPerSegment"] == 2


# ------------------------------------------------------------------------------------------ failing cleanly


def test_a_priority_50_ingest_revokes_a_running_compaction_which_then_fails_publishing_nothing(rt):
    for i in range(3):
        index.run(index_spec(batch(i)), rt)
    inputs = sorted(s.id for s in rt.store.used_segments("t"))
    files_before = files_under(rt)

    task = compact.submit(compact_spec(), rt)
    [lock] = compact.acquire_locks(task, rt)
    assert lock.priority == 25
    plan = compact.plan(task, rt)
    result = compact.build_all(plan, rt)
    assert files_under(rt) > files_before  # the build pushed its segment file

    ingest = index.submit(index_spec(batch(9), append=False), rt)
    assert ingest.priority == 50
    held = rt.lockbox.try_lock(ingest.task_id, datasource="t", interval=DAY, lock_type="EXCLUSIVE", priority=50)
    assert held.acquired  # the compaction's 25 could not stop it
    assert [lk.revoked for lk in rt.lockbox.locks(datasource="t", task_id=task.task_id)] == [True]

    with pytest.raises(LockRevokedError):
        compact.publish(plan, [result], rt)
    compact.fail(task.task_id, "revoked", rt)
    compact.release(task.task_id, rt)

    assert sorted(s.id for s in rt.store.used_segments("t")) == inputs  # nothing published, nothing marked unused
    assert all(r.used for r in rt.store.segments("t", include_unused=True))
    assert files_under(rt) == files_before  # the unpublished file was removed
    assert rt.store.get_task(task.task_id).status == "FAILED"


def test_the_revoked_compaction_fails_through_run_too(rt, monkeypatch):
    for i in range(2):
        index.run(index_spec(batch(i)), rt)
    before = sorted(s.id for s in rt.store.used_segments("t"))
    real_build = compact.build_all

    def build_then_get_preempted(plan, rt_):
        result = real_build(plan, rt_)
        assert rt_.lockbox.try_lock("index_intruder", datasource="t", interval=DAY, priority=50).acquired
        return result

    monkeypatch.setattr(compact, "build_all", build_then_get_preempted)
    with pytest.raises(LockRevokedError):
        compact.run(compact_spec(id="compact_revoked"), rt)
    assert sorted(s.id for s in rt.store.used_segments("t")) == before
    assert rt.store.get_task("compact_revoked").status == "FAILED"
    assert rt.lockbox.locks(task_id="compact_revoked") == []


@pytest.mark.parametrize("change", ["marked-unused", "new-segment"])
def test_input_changed_between_plan_and_publish_fails_and_publishes_nothing(rt, change):
    for i in range(3):
        index.run(index_spec(batch(i)), rt)
    inputs = rt.store.used_segments("t")
    task = compact.submit(compact_spec(), rt)
    compact.acquire_locks(task, rt)
    plan = compact.plan(task, rt)
    result = compact.build_all(plan, rt)

    if change == "marked-unused":  # a user drops one of the inputs (no lock needed for that)
        assert rt.store.mark_unused("t", segment_ids=[inputs[1].id], reason="dropped-by-user") == 1
    else:  # a segment appears in the chunk behind the lockbox's back
        extra = inputs[-1].model_copy(update={"shard_spec": inputs[-1].shard_spec.model_copy(update={"partition_num": 7})})
        rt.store.publish_segments([extra])
    used_before = sorted(s.id for s in rt.store.used_segments("t"))

    with pytest.raises(InputChangedError, match="changed after it was planned"):
        compact.publish(plan, [result], rt)
    compact.release(task.task_id, rt)
    assert sorted(s.id for s in rt.store.used_segments("t")) == used_before
    assert not any(s.version == plan.lock_version for s in rt.store.used_segments("t"))


def test_segment_list_and_sha256_checks(rt):
    for i in range(2):
        index.run(index_spec(batch(i)), rt)
    ids = sorted(s.id for s in rt.store.used_segments("t"))
    good = sha256_of_segment_ids(ids)

    bad = compact_spec()
    bad["ioConfig"]["inputSpec"]["sha256OfSortedSegmentIds"] = sha256_of_segment_ids(ids[:1])
    with pytest.raises(InputChangedError, match="sha256OfSortedSegmentIds"):
        compact.run(bad, rt)
    with pytest.raises(InputChangedError, match="no longer visible"):
        compact.run({"type": "compact", "dataSource": "t", "ioConfig": {"type": "compact", "inputSpec": {
            "type": "segments", "segments": ids + [ids[0] + "_5"]}}}, rt)
    with pytest.raises(InputChangedError, match="not listed"):
        compact.run({"type": "compact", "dataSource": "t", "segments": ids[:1]}, rt)
    assert sorted(s.id for s in rt.store.used_segments("t")) == ids

    ok = compact_spec()
    ok["ioConfig"]["inputSpec"]["sha256OfSortedSegmentIds"] = good
    compact.run(ok, rt)
    assert len(rt.store.used_segments("t")) == 1


def test_an_interval_without_segments_fails_before_locking(rt):
    index.run(index_spec(batch(0)), rt)
    with pytest.raises(NoSegmentsError):
        compact.run(compact_spec("2024-03-01/2024-03-02", id="compact_empty"), rt)
    record = rt.store.get_task("compact_empty")
    assert record.status == "FAILED" and "nothing to compact" in record.error_msg
    assert rt.lockbox.locks(datasource="t") == []


def test_a_target_granularity_needs_an_aligned_interval(rt):
    index.run(index_spec(batch(0), seg="HOUR"), rt)
    with pytest.raises(SpecError, match="not aligned with segmentGranularity DAY"):
        compact.run(compact_spec("2024-01-01T05:00/2024-01-01T07:00", segmentGranularity="DAY"), rt)
    spec = compact_spec("2024-01-01T05:00/2024-01-01T07:00", segmentGranularity="DAY")
    spec["ioConfig"]["allowNonAlignedInterval"] = True
    report = compact.run(spec, rt)  # compacts the whole day the interval touches: no hour is lost
    assert [str(s.interval) for s in report.segments] == ["2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z"]
    assert pc.sum(rows_of(rt)["count"]).as_py() == 24


def test_drop_existing_writes_tombstones_where_the_output_is_empty(rt):
    index.run(index_spec(batch(0) + [dict(r, ts=r["ts"].replace("01T", "02T")) for r in batch(0)], append=False), rt)
    spec = compact_spec("2024-01-01/2024-01-03", transformSpec={"filter": {"type": "selector", "dimension": "d", "value": "nope"}})
    spec["ioConfig"]["dropExisting"] = True
    report = compact.run(spec, rt)
    assert [s.shard_spec.type for s in report.segments] == ["tombstone", "tombstone"]
    assert rows_of(rt).num_rows == 0  # the tombstones hide the old data
    assert len(report.marked_unused) == 2


def test_publish_is_idempotent_and_units_can_be_built_apart(rt):
    index.run(index_spec(batch(0) + [dict(r, ts=r["ts"].replace("01T", "02T")) for r in batch(1)]), rt)
    task = compact.submit(compact_spec("2024-01-01/2024-01-03"), rt)
    compact.acquire_locks(task, rt)
    plan = compact.CompactionPlan.parse(json.loads(json.dumps(compact.plan(task, rt).model_dump())))
    assert len(plan.build_units) == 2
    results = []
    for unit in plan.build_units:  # as the mapped Airflow instances do, each reading only its own chunk
        unit = BuildUnit.parse(json.loads(json.dumps(unit.model_dump())))
        result = compact.build(plan, unit, rt)
        assert result.row_stats.thrown_away == 0
        results.append(BuildResult.parse(json.loads(json.dumps(result.model_dump()))))
    first = compact.publish(plan, results, rt)
    again = compact.publish(plan, results, rt)  # a retried publish step
    assert [s.id for s in again.segments] == [s.id for s in first.segments]
    assert sorted(s.id for s in rt.store.used_segments("t")) == sorted(s.id for s in first.segments)
    assert pc.sum(rows_of(rt)["count"]).as_py() == 48
    compact.release(task.task_id, rt)


def test_dispatch_runs_compact_tasks(rt):
    for i in range(2):
        index.run(index_spec(batch(i)), rt)
    report = run_task(compact_spec(), rt)
    assert report["status"] == "SUCCESS" and len(report["segments"]) == 1
    assert Counter(r.unused_reason for r in rt.store.segments("t", include_unused=True) if not r.used) == {OVERSHADOWED_BY_COMPACTION: 2}


def test_a_compaction_longer_than_the_lock_lease_keeps_its_lock(rt, monkeypatch):
    import dataclasses
    import time

    from druidflow.locks import TaskLockbox

    for i in range(2):
        index.run(index_spec(batch(i)), rt)
    short = dataclasses.replace(rt, lockbox=TaskLockbox(rt.store.engine, lease_seconds=1.0))
    real_build = compact.build_all

    def slow_build(plan, rt_):
        time.sleep(2.5)  # more than twice the lease: only the heartbeat keeps the lock alive
        return real_build(plan, rt_)

    monkeypatch.setattr(compact, "build_all", slow_build)
    report = compact.run(compact_spec(), short)
    assert report.status == "SUCCESS" and len(rt.store.used_segments("t")) == 1


def test_publish_reads_the_timeline_once_and_parses_only_the_checked_inputs(rt, monkeypatch):
    """Under the mutex, the publish reads one narrow-column timeline (one set aggregate for a contiguous span):
    the unchanged-input check uses it, and the overshadowed inputs are found in it with the output added in
    memory, their ids read from a column. Before, every lock interval (here 3 days) read its own timeline and
    parsed every overshadowed segment's payload."""
    from druidflow.metadata import segment_reads, segment_rows

    rows = [dict(r, ts=r["ts"].replace("01T", f"0{d}T")) for d in (1, 2, 3) for r in batch(d)]
    index.run(index_spec(rows, seg="HOUR", append=False, interval="2024-01-01/2024-01-04"), rt)
    index.run(index_spec(rows, seg="HOUR", interval="2024-01-01/2024-01-04"), rt)  # a second partition per hour
    hourly = rt.store.used_segments("t")
    assert len(hourly) == 3 * 24 * 2
    task = compact.submit(compact_spec("2024-01-01/2024-01-04", segmentGranularity="DAY"), rt)
    compact.acquire_locks(task, rt)
    plan = compact.plan(task, rt)
    results = [compact.build_all(plan, rt)]
    assert len(plan.index_plan.chunks) == 3

    calls = {"sets": 0, "payloads": 0}
    real_sets, real_parse = segment_reads.used_sets, segment_rows.segment_from_payload

    def counted_sets(*args, **kwargs):
        calls["sets"] += 1
        return real_sets(*args, **kwargs)

    def counted_parse(payload):
        calls["payloads"] += 1
        return real_parse(payload)

    monkeypatch.setattr(segment_reads, "used_sets", counted_sets)
    monkeypatch.setattr(segment_rows, "segment_from_payload", counted_parse)
    report = compact.publish(plan, results, rt)
    monkeypatch.undo()

    assert calls["sets"] == 1
    assert calls["payloads"] == len(hourly)  # the visible inputs, once, for the unchanged-input check
    assert sorted(report.marked_unused) == sorted(s.id for s in hourly)
    used = rt.store.used_segments("t")
    assert len(used) == 3 and {s.interval.duration for s in used} == {86_400_000}
    assert totals(rows_of(rt))["count"] == 2 * 3 * 24
    compact.release(task.task_id, rt)
