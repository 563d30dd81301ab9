"""The kill task, mark unused/used, the orphan sweep and the CLI, on SQLite and PostgreSQL, with local deep
storage and S3 (moto in server mode, over HTTP).

Segments are real rows pointing at real files in deep storage: pushed through the storage and published through
the metadata store (one test also makes them with the index task). "Leaked" means a file no row points at, or a
row whose file is gone without the row being claimed by a kill.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from druidflow.exceptions import LockRevokedError, LockUnavailableError, SegmentBeingKilledError, SpecError
from druidflow.intervals import MS_DAY, Interval, format_instant, parse_instant
from druidflow.locks import TaskLockbox
from druidflow.metadata.tables import segments as S
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.ids import storage_dir
from druidflow.segments.shardspec import NumberedShardSpec
from druidflow.tasks import kill, kill_files
from druidflow.tasks.dispatch import run_task
from druidflow.tasks.orphans import find_orphans, sweep_orphans
from druidflow.tasks.runtime import Runtime

REPO = Path(__file__).resolve().parents[2]
DS = "wiki"
V1, V2 = "2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"
NOW = parse_instant("2024-06-01T00:00:00Z")


class Crash(Exception):
    """Raised from a checkpoint: the process 'dies' at that point."""


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(params=["local", "s3"])
def storage_uri(request, tmp_path) -> tuple[str, dict]:
    if request.param == "local":
        return str(tmp_path / "deep"), {}
    server = request.getfixturevalue("s3_server")
    return f"s3://{server.make_bucket()}/druid/segments", server.options


@pytest.fixture
def rt(db_url, storage_uri, tmp_path) -> Runtime:
    uri, options = storage_uri
    return Runtime.from_urls(db_url, uri, tmp_path / "work", **options)


@pytest.fixture
def local_rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def day(n: int) -> Interval:
    """Day n of January 2024 (1-based)."""
    start = parse_instant("2024-01-01") + (n - 1) * MS_DAY
    return Interval(start, start + MS_DAY)


def details(report: dict) -> dict:
    """Druidflow's detail of a kill report in Druid's shape (``KillTaskReport``, apache/druid
    processing/src/main/java/org/apache/druid/indexer/report/KillTaskReport.java: ``{"killUnusedSegments": {"type",
    "taskId", "payload": Stats}}``), after checking that shape."""
    (key,) = report
    entry = report[key]
    assert key == entry["type"] == "killUnusedSegments"
    assert set(entry) == {"type", "taskId", "payload", "druidflowDetails"}
    assert set(entry["payload"]) == {"numSegmentsKilled", "numBatchesProcessed", "numSegmentsMarkedAsUnused"}
    assert entry["taskId"] == entry["druidflowDetails"]["taskId"]
    return entry["druidflowDetails"]


def seed(rt: Runtime, intervals, *, version=V1, partitions=1, ds=DS, load_spec=None, payload=b"segment") -> list[DataSegment]:
    """Push one small file per segment and publish the segments (used)."""
    out = []
    scratch = rt.work_dir / "seed"
    scratch.mkdir(parents=True, exist_ok=True)
    for iv in intervals:
        for p in range(partitions):
            spec = load_spec
            if spec is None:
                local = scratch / f"{iv.start}-{version}-{p}"
                local.write_bytes(payload * (p + 1))
                spec = rt.storage.push(local, f"{storage_dir(ds, iv, version, p)}/index.parquet")
            out.append(
                DataSegment(
                    data_source=ds,
                    interval=iv,
                    version=version,
                    shard_spec=NumberedShardSpec(partition_num=p, partitions=partitions),
                    load_spec=spec,
                    dimensions="page",
                    metrics="count",
                    size=100 + p,
                    num_rows=1,
                )
            )
    rt.store.publish_segments(out)
    return out


def unuse(rt: Runtime, segments, *, at: int | None = None) -> None:
    """Mark ``segments`` unused (at time ``at``, default NOW - 60 days)."""
    rt.store.mark_unused(segments[0].data_source, segment_ids=[s.id for s in segments], reason="dropped-by-user")
    stamp = format_instant(NOW - 60 * MS_DAY if at is None else at)
    with rt.store.engine.begin() as c:
        c.execute(sa.update(S).where(S.c.id.in_([s.id for s in segments])).values(used_status_last_updated=stamp))


def rows(rt: Runtime, ds: str = DS) -> dict[str, dict]:
    with rt.store.engine.connect() as c:
        result = c.execute(sa.select(S.c.id, S.c.used, S.c.kill_task_id, S.c.load_path).where(S.c.dataSource == ds))
        return {r.id: {"used": bool(r.used), "claim": r.kill_task_id, "path": r.load_path} for r in result}


def files(rt: Runtime, ds: str = DS) -> set[str]:
    return {rt.storage.load_path(spec) for _, _, spec in rt.storage.list_keys(f"{ds}/")}


def assert_nothing_leaked(rt: Runtime, ds: str = DS, *, allow_claimed: bool = False) -> None:
    """No file without a row; no row without its file unless a kill has claimed it (and then it is unused)."""
    table = rows(rt, ds)
    present = files(rt, ds)
    referenced = {r["path"] for r in table.values()}
    assert present <= referenced, f"files without a row: {present - referenced}"
    for sid, r in table.items():
        if r["claim"] is not None:
            assert allow_claimed, f"row {sid} still claimed by {r['claim']}"
            assert not r["used"]
        else:
            assert r["path"] in present, f"row {sid} lost its file {r['path']}"


def kill_spec(interval: str = "2024-01-01/2024-01-31", **extra) -> dict:
    return {"type": "kill", "dataSource": DS, "interval": interval, **extra}


# ---------------------------------------------------------------------------------------------------- what is killed


def test_kill_removes_files_and_rows_of_unused_segments_inside_the_interval_only(rt):
    inside_unused = seed(rt, [day(1), day(2), day(3)], partitions=2)
    inside_used = seed(rt, [day(4)])
    partly_outside = seed(rt, [Interval(day(5).start, day(9).end)], version=V2)
    outside = seed(rt, [day(20)])
    unuse(rt, inside_unused + partly_outside + outside)

    report = kill.run(kill_spec("2024-01-01/2024-01-08", batchSize=4), rt)

    killed = {s.id for s in inside_unused}
    assert set(report.segments) == killed and report.num_segments_killed == 6
    assert report.num_batches_processed == 2  # 4 + 2
    assert report.bytes_killed == sum(s.size for s in inside_unused)
    assert report.num_files_deleted == 6
    left = rows(rt)
    assert killed.isdisjoint(left)
    assert {s.id for s in inside_used + partly_outside + outside} == set(left)
    assert left[inside_used[0].id]["used"] is True
    assert files(rt) == {r["path"] for r in left.values()}
    assert report.skipped["used"].segments == 1 and report.skipped["used"].examples == [inside_used[0].id]
    assert report.skipped["partlyOutsideInterval"].segments == 1
    assert "beyondLimit" not in report.skipped
    assert_nothing_leaked(rt)
    # The report is stored with the task, in Druid's shape.
    record = rt.store.get_task(report.task_id)
    assert record.status == "SUCCESS" and record.type == "kill" and not record.active
    payload = record.report["killUnusedSegments"]["payload"]
    assert payload["numSegmentsKilled"] == 6 and payload["numBatchesProcessed"] == 2
    assert rt.lockbox.locks(datasource=DS) == []


def test_empty_parent_directories_are_removed(local_rt):
    segments = seed(local_rt, [day(1), day(2)], partitions=2)
    seed(local_rt, [day(3)])
    unuse(local_rt, segments)
    kill.run(kill_spec(), local_rt)
    root = Path(local_rt.storage.uri) / DS
    assert sorted(p.name for p in root.iterdir()) == [f"{format_instant(day(3).start)}_{format_instant(day(3).end)}"]


def test_batches_are_capped_by_limit(rt):
    segments = seed(rt, [day(n) for n in range(1, 8)])
    unuse(rt, segments)
    report = kill.run(kill_spec(batchSize=3, limit=5), rt)
    assert report.num_batches_processed == 2  # ceil(5 / 3)
    assert report.num_segments_killed == 5
    assert report.segments == [s.id for s in segments[:5]]  # oldest interval first
    assert report.skipped["beyondLimit"].segments == 2
    assert set(rows(rt)) == {s.id for s in segments[5:]}


def test_versions_and_max_used_status_last_updated_time_filter(rt):
    old_v1 = seed(rt, [day(1)], version=V1)
    old_v2 = seed(rt, [day(2)], version=V2)
    recent_v1 = seed(rt, [day(3)], version=V1)
    unuse(rt, old_v1 + old_v2, at=NOW - 10 * MS_DAY)
    unuse(rt, recent_v1, at=NOW - MS_DAY)
    report = kill.run(
        kill_spec(versions=[V1], maxUsedStatusLastUpdatedTime=format_instant(NOW - 5 * MS_DAY)), rt
    )
    assert report.segments == [old_v1[0].id]
    assert report.skipped["versionNotSelected"].examples == [old_v2[0].id]
    assert report.skipped["markedUnusedAfterMaxUsedStatusLastUpdatedTime"].examples == [recent_v1[0].id]
    # maxUsedStatusLastUpdatedTime in another form (an offset) means the same instant
    report = kill.run(kill_spec(maxUsedStatusLastUpdatedTime="2024-05-31T02:00:00+02:00"), rt)
    assert report.segments == [old_v2[0].id, recent_v1[0].id]


def test_buffer_period_holds_in_the_scheduled_kill(rt):
    old = seed(rt, [day(1), day(2)])
    recent = seed(rt, [day(3)])
    unuse(rt, old, at=NOW - 31 * MS_DAY)
    unuse(rt, recent, at=NOW - 29 * MS_DAY)
    report = kill.scheduled_kill(rt, DS, clock=lambda: NOW)
    assert report.segments == [s.id for s in old]
    assert report.skipped["withinBufferPeriod"].examples == [recent[0].id]
    # the recent mistake can still be undone
    assert rt.store.mark_used(DS, segment_ids=[recent[0].id]) == 1
    # a shorter buffer, and durationToRetain (only intervals that ended long enough ago)
    unuse(rt, recent, at=NOW - 2 * MS_DAY)
    assert kill.scheduled_kill(rt, DS, buffer_period="P1D", duration_to_retain="P200D", clock=lambda: NOW) is None
    report = kill.scheduled_kill(rt, DS, buffer_period="P1D", duration_to_retain="P100D", clock=lambda: NOW)
    assert report.segments == [recent[0].id]
    assert rows(rt) == {}


def test_a_file_shared_with_a_used_segment_is_kept(rt):
    (used,) = seed(rt, [day(1)], version=V2)
    # Concurrent append/replace can leave two ids pointing at one file; here an unused one shares `used`'s file.
    (sharer,) = seed(rt, [day(1)], version=V1, load_spec=used.load_spec)
    unuse(rt, [sharer])
    report = kill.run(kill_spec(), rt)
    assert report.segments == [sharer.id] and report.files == []
    assert report.skipped["fileSharedWithUsedSegment"].files == 1
    assert rt.storage.exists(used.load_spec)
    # once the last row goes, so does the file
    unuse(rt, [used])
    report = kill.run(kill_spec(), rt)
    assert report.files == [rt.storage.load_path(used.load_spec)] and not rt.storage.exists(used.load_spec)


def test_a_file_shared_across_batches_goes_with_its_last_row(rt):
    (first,) = seed(rt, [day(1)], version=V1)
    (second,) = seed(rt, [day(2)], version=V1, load_spec=first.load_spec)
    unuse(rt, [first, second])
    report = kill.run(kill_spec(batchSize=1), rt)
    assert report.num_batches_processed == 2 and report.num_files_deleted == 1
    assert report.skipped["fileSharedWithOtherSegment"].files == 1
    assert not rt.storage.exists(first.load_spec) and rows(rt) == {}


# ---------------------------------------------------------------------------------------------------- dry run


def test_dry_run_deletes_nothing_and_lists_exactly_what_a_real_run_deletes(rt):
    segments = seed(rt, [day(n) for n in range(1, 7)], partitions=2)
    (used,) = seed(rt, [day(1)], version=V2)
    (sharer,) = seed(rt, [day(10)], version=V1, load_spec=used.load_spec)
    (cross,) = seed(rt, [day(11)], version=V1, load_spec=segments[0].load_spec)
    unuse(rt, segments[:9] + [sharer, cross])
    spec = kill_spec(batchSize=4, limit=10)
    before_rows, before_files = rows(rt), files(rt)

    plan = kill.run(spec, rt, dry_run=True)
    assert plan.dry_run and plan.status == "DRY_RUN"
    assert rows(rt) == before_rows and files(rt) == before_files
    assert rt.store.list_tasks(DS) == [] and rt.lockbox.locks() == []

    real = kill.run(spec, rt)
    gone_rows = set(before_rows) - set(rows(rt))
    gone_files = before_files - files(rt)
    assert set(plan.segments) == gone_rows == set(real.segments)
    assert set(plan.files) == gone_files == set(real.files)
    for field in ("num_segments_killed", "num_batches_processed", "bytes_killed", "num_files_deleted", "skipped"):
        assert getattr(plan, field) == getattr(real, field), field
    assert plan.skipped["fileSharedWithUsedSegment"].files == 1
    assert plan.skipped["beyondLimit"].segments == 1


def test_a_spec_runs_as_written_unless_its_context_says_dry_run(local_rt):
    segments = seed(local_rt, [day(1), day(2)])
    unuse(local_rt, segments)
    report = run_task(kill_spec(context={"dryRun": True}), local_rt)
    assert report["dryRun"] is True and report["numSegmentsToKill"] == 2 and len(rows(local_rt)) == 2
    assert "numSegmentsKilled" not in report and "bytesKilled" not in report and "numFilesDeleted" not in report
    report = run_task(kill_spec(), local_rt)
    assert report["status"] == "SUCCESS" and rows(local_rt) == {}


def test_dry_run_names_the_tasks_whose_locks_a_real_run_would_wait_for(local_rt):
    segments = seed(local_rt, [day(1)])
    unuse(local_rt, segments)
    assert local_rt.lockbox.try_lock("index_busy", datasource=DS, interval=day(1), priority=50).acquired
    plan = kill.run(kill_spec(), local_rt, dry_run=True)
    assert plan.blocked_by == ["index_busy"]


# ---------------------------------------------------------------------------------------------------- crashes


def _crash_at(step: str, batch: int = 1, after_files: int = 1):
    seen = {"files": 0}

    def checkpoint(s: kill.KillStep) -> None:
        if s.batch != batch or s.step != step:
            return
        if step == "file_deleted":
            seen["files"] += 1
            if seen["files"] < after_files:
                return
        raise Crash(f"crash at {step} of batch {batch}")

    return checkpoint


@pytest.mark.parametrize("retry", ["same_task", "new_task"])
@pytest.mark.parametrize("step", ["claimed", "file_deleted", "files_deleted", "rows_deleted"])
def test_a_crash_at_any_step_is_finished_by_a_retry_with_nothing_leaked(rt, step, retry, monkeypatch):
    monkeypatch.setattr(kill_files, "S3_DELETE_KEYS_PER_REQUEST", 1)  # S3: one request per file, so "some files" exist
    segments = seed(rt, [day(n) for n in range(1, 4)], partitions=2)
    (used,) = seed(rt, [day(1)], version=V2)
    unuse(rt, segments)
    spec = kill_spec(id="kill_wiki_crash", batchSize=4)

    with pytest.raises(Crash):
        kill.run(spec, rt, checkpoint=_crash_at(step, after_files=2))

    table = rows(rt)
    first_batch = {s.id for s in segments[:4]}
    if step == "rows_deleted":
        assert first_batch.isdisjoint(table)
    else:
        assert {sid for sid, r in table.items() if r["claim"]} == first_batch
    assert_nothing_leaked(rt, allow_claimed=True)
    if step != "rows_deleted":
        with pytest.raises(SegmentBeingKilledError):
            rt.store.mark_used(DS, segment_ids=[segments[0].id])
    record = rt.store.get_task("kill_wiki_crash")
    assert record.status == "FAILED" and "Crash" in record.error_msg

    retry_spec = spec if retry == "same_task" else kill_spec(batchSize=4)
    report = kill.run(retry_spec, rt)
    assert set(rows(rt)) == {used.id}
    assert_nothing_leaked(rt)
    expected_left = 6 - (4 if step == "rows_deleted" else 0)
    assert report.num_segments_killed == expected_left
    if retry == "new_task" and step != "rows_deleted":
        assert report.resumed == {"kill_wiki_crash": 4}
    else:
        assert report.resumed == {}
    assert rt.storage.exists(used.load_spec)


_SUBPROCESS_KILL = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from druidflow.locks import TaskLockbox
    from druidflow.metadata.engine import make_engine
    from druidflow.metadata.store import MetadataStore
    from druidflow.storage import deep_storage_from_uri
    from druidflow.tasks import kill
    from druidflow.tasks.runtime import Runtime

    url, deep, work = sys.argv[1:4]
    engine = make_engine(url)
    rt = Runtime(MetadataStore(engine), TaskLockbox(engine, lease_seconds=1.5), deep_storage_from_uri(deep), Path(work))

    def die(step):
        if step.step == "file_deleted":
            os._exit(17)  # no finally, no rollback, no release: the process is simply gone

    kill.run({"type": "kill", "id": "kill_wiki_dead", "dataSource": "wiki", "interval": "2024-01-01/2024-02-01",
              "batchSize": 2}, rt, checkpoint=die)
    """
)


def test_a_killed_process_leaves_claimed_rows_that_the_next_kill_finishes(local_rt, db_url, tmp_path):
    segments = seed(local_rt, [day(1), day(2), day(3)])
    unuse(local_rt, segments)
    proc = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_KILL, db_url, local_rt.storage.uri, str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 17, proc.stderr[-3000:]
    # The dead kill still holds its lock (until its lease runs out) and its task still says RUNNING. The lease is
    # judged on a clock of the test's own, set just before it runs out: on a loaded machine more than 1.5 s may
    # pass between the subprocess's death and these checks.
    (dead_lock,) = [lk for lk in local_rt.lockbox.locks(DS) if lk.task_id == "kill_wiki_dead"]
    now = {"ms": dead_lock.lease_expires_ms - 1}
    judged = dataclasses.replace(local_rt, lockbox=TaskLockbox(local_rt.store.engine, clock=lambda: now["ms"]))
    assert local_rt.store.get_task("kill_wiki_dead").status == "RUNNING"
    assert [lk.task_id for lk in judged.lockbox.locks(DS) if lk.active] == ["kill_wiki_dead"]
    assert {sid for sid, r in rows(local_rt).items() if r["claim"]} == {segments[0].id, segments[1].id}
    assert_nothing_leaked(local_rt, allow_claimed=True)
    with pytest.raises(LockUnavailableError):
        kill.run(kill_spec(), judged)  # the lease is still alive: a new kill must wait
    now["ms"] = dead_lock.lease_expires_ms + 1
    report = kill.run(kill_spec(), judged)  # ... and gets the lock once it expires
    assert report.resumed == {"kill_wiki_dead": 2} and report.num_segments_killed == 3
    assert rows(local_rt) == {} and files(local_rt) == set()


# ---------------------------------------------------------------------------------------------------- concurrency


def test_marking_a_segment_used_again_during_its_kill_is_refused(rt):
    segments = seed(rt, [day(1), day(2), day(3)])
    unuse(rt, segments)
    refused = []

    def revive(step: kill.KillStep) -> None:
        if step.step == "claimed" and step.batch == 1:
            for sid in [segments[0].id, segments[1].id]:
                with pytest.raises(SegmentBeingKilledError):
                    rt.store.mark_used(DS, segment_ids=[sid])
                refused.append(sid)
            with pytest.raises(SegmentBeingKilledError):
                rt.store.mark_used(DS)  # the whole dataSource: refused as a whole, nothing changes
            assert not any(r["used"] for r in rows(rt).values())

    report = kill.run(kill_spec(batchSize=2), rt, checkpoint=revive)
    assert refused == [segments[0].id, segments[1].id]
    assert report.num_segments_killed == 3 and rows(rt) == {}


def test_a_segment_marked_used_before_its_batch_is_claimed_survives(local_rt):
    segments = seed(local_rt, [day(1), day(2), day(3)])
    unuse(local_rt, segments)

    def revive(step: kill.KillStep) -> None:
        if step.step == "rows_deleted" and step.batch == 1:
            assert local_rt.store.mark_used(DS, segment_ids=[segments[2].id]) == 1

    report = kill.run(kill_spec(batchSize=2), local_rt, checkpoint=revive)
    assert report.num_segments_killed == 2
    assert set(rows(local_rt)) == {segments[2].id} and local_rt.storage.exists(segments[2].load_spec)


@pytest.mark.parametrize("revoke_at", ["claimed", "rows_deleted"])
def test_a_kill_revoked_by_a_higher_priority_ingest_stops_between_batches(rt, revoke_at):
    segments = seed(rt, [day(n) for n in range(1, 7)])
    unuse(rt, segments)
    interval = "2024-01-01/2024-01-31"
    taken = []

    def ingest(step: kill.KillStep) -> None:
        if step.step == revoke_at and step.batch == 1:
            result = rt.lockbox.try_lock("index_wiki_1", datasource=DS, interval=interval, priority=50)
            taken.append(result.acquired)

    with pytest.raises(LockRevokedError) as caught:
        kill.run(kill_spec(interval, id="kill_wiki_revoked", batchSize=2), rt, checkpoint=ingest)
    assert taken == [True]
    report = caught.value.report
    assert report.status == "FAILED"
    assert report.num_batches_processed == 1 and report.num_segments_killed == 2  # the claimed batch was finished
    assert report.skipped["lockRevoked"].segments == 4
    assert "revoked" in str(caught.value)
    left = rows(rt)
    assert set(left) == {s.id for s in segments[2:]} and not any(r["claim"] for r in left.values())
    assert_nothing_leaked(rt)
    stored = rt.store.get_task("kill_wiki_revoked")
    assert stored.status == "FAILED" and stored.report["killUnusedSegments"]["payload"]["numSegmentsKilled"] == 2
    assert [(lk.task_id, lk.active) for lk in rt.lockbox.locks(DS)] == [("index_wiki_1", True)]


def test_a_kill_fails_without_deleting_when_an_ingest_holds_the_interval(local_rt):
    segments = seed(local_rt, [day(1), day(2)])
    unuse(local_rt, segments)
    assert local_rt.lockbox.try_lock("index_wiki_2", datasource=DS, interval=day(2), priority=50).acquired
    with pytest.raises(LockUnavailableError, match="index_wiki_2"):
        kill.run(kill_spec(), local_rt)
    assert len(rows(local_rt)) == 2


def test_skip_locked_intervals_kills_around_a_locked_interval_and_reports_it(local_rt):
    segments = seed(local_rt, [day(1), day(2), day(3), day(4)])
    unuse(local_rt, segments)
    assert local_rt.lockbox.try_lock("index_wiki_3", datasource=DS, interval=day(3), priority=50).acquired
    spec = kill_spec(context={"skipLockedIntervals": True})
    plan = kill.run(spec, local_rt, dry_run=True)
    report = kill.run(spec, local_rt)
    assert set(report.segments) == set(plan.segments) == {segments[i].id for i in (0, 1, 3)}
    assert report.skipped["intervalLocked"].segments == 1
    assert "index_wiki_3" in report.skipped["intervalLocked"].examples[0]
    assert report.locked_intervals == [Interval(day(1).start, day(2).end), day(4)]
    assert set(rows(local_rt)) == {segments[2].id}


def test_mark_as_unused_marks_the_used_segments_inside_the_interval_first(local_rt):
    inside = seed(local_rt, [day(1), day(2)])
    overlapping = seed(local_rt, [Interval(day(2).start, day(5).end)], version=V2)
    spec = kill_spec("2024-01-01/2024-01-04", markAsUnused=True)
    plan = kill.run(spec, local_rt, dry_run=True)
    assert plan.num_segments_marked_as_unused == 2 and set(plan.segments) == {s.id for s in inside}
    assert all(r["used"] for r in rows(local_rt).values())
    report = kill.run(spec, local_rt)
    assert report.num_segments_marked_as_unused == 2 and set(report.segments) == {s.id for s in inside}
    assert set(rows(local_rt)) == {overlapping[0].id} and rows(local_rt)[overlapping[0].id]["used"]
    with pytest.raises(SpecError, match="markAsUnused"):
        kill.run(kill_spec(markAsUnused=True, limit=3), local_rt)


# ---------------------------------------------------------------------------------------------------- end to end


def test_segments_made_by_the_index_task_are_killed(local_rt):
    from druidflow.tasks import index
    from tests.tasks.test_index import inline_spec

    data = "\n".join(json.dumps({"ts": f"2024-01-0{d}T01:00:00Z", "d": "x", "v": d}) for d in range(1, 5))
    spec = inline_spec(data, intervals=["2024-01-01/2024-01-05"])
    spec["spec"]["dataSchema"]["dataSource"] = DS
    published = index.run(spec, local_rt).segments
    local_rt.store.mark_unused(DS, interval=Interval.parse("2024-01-01/2024-01-03"), reason="dropped-by-user")
    report = kill.run(kill_spec(), local_rt)
    assert sorted(report.segments) == sorted(s.id for s in published if s.interval.end <= day(2).end)
    assert len(local_rt.store.used_segments(DS)) == 2
    assert_nothing_leaked(local_rt)


def test_the_orphan_sweep_finds_files_no_row_points_at(rt):
    (kept,) = seed(rt, [day(1)])
    scratch = rt.work_dir / "orphan"
    scratch.write_bytes(b"x" * 7)
    orphan = rt.storage.push(scratch, f"{storage_dir(DS, day(2), V1, 0)}/index.parquet")
    in_flight = rt.storage.push(scratch, f"{storage_dir(DS, day(3), V1, 0)}/index.parquet")
    stray = rt.storage.push(scratch, f"{DS}/notes.txt")
    assert rt.lockbox.try_lock("index_wiki_4", datasource=DS, interval=day(3), priority=50).acquired

    found = {o.path: o for o in find_orphans(rt, DS)}
    path = rt.storage.load_path
    assert set(found) == {path(orphan), path(in_flight), path(stray)}
    assert found[path(orphan)].state == "orphan" and found[path(orphan)].size == 7
    assert found[path(in_flight)].state == "locked" and found[path(in_flight)].locked_by == ["index_wiki_4"]
    assert found[path(stray)].state == "unrecognised"

    report = sweep_orphans(rt, DS, delete=True, grace_seconds=0)
    assert report.deleted == 1 and report.bytes_deleted == 7
    assert not rt.storage.exists(orphan)
    assert rt.storage.exists(in_flight) and rt.storage.exists(stray) and rt.storage.exists(kept.load_spec)


# ---------------------------------------------------------------------------------------------------- CLI


def _cli(*args: str, url: str, deep: str) -> tuple[int, str]:
    import contextlib
    import io

    from druidflow.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--metadata-url", url, "--deep-storage", deep, *args])
    return code, out.getvalue()


def test_druidflow_kill_is_a_dry_run_until_confirmed(local_rt, db_url, tmp_path):
    segments = seed(local_rt, [day(1), day(2)])
    deep = local_rt.storage.uri
    code, out = _cli("mark-unused", DS, "--interval", "2024-01-01/2024-01-02", url=db_url, deep=deep)
    assert code == 0 and "marked 1 segment(s)" in out
    code, out = _cli("kill", DS, "2024-01-01/2024-02-01", url=db_url, deep=deep)
    assert code == 0 and out.startswith("DRY RUN") and segments[0].id in out
    assert local_rt.storage.load_path(segments[0].load_spec) in out
    assert "used: 1 segment(s)" in out and len(rows(local_rt)) == 2

    spec = tmp_path / "kill.json"
    spec.write_text(json.dumps(kill_spec()))
    code, out = _cli("kill", "--spec", str(spec), url=db_url, deep=deep)
    assert out.startswith("DRY RUN") and len(rows(local_rt)) == 2  # a person typed it: still a dry run

    code, out = _cli("kill", DS, "2024-01-01/2024-02-01", "--confirm", "--json", url=db_url, deep=deep)
    assert json.loads(out)["killUnusedSegments"]["payload"]["numSegmentsKilled"] == 1
    report = details(json.loads(out))
    assert code == 0 and report["segments"] == [segments[0].id] and report["dryRun"] is False
    assert set(rows(local_rt)) == {segments[1].id}

    code, out = _cli("mark-unused", DS, "--all", "--reason", "oops", url=db_url, deep=deep)
    assert "marked 1 segment(s)" in out and not rows(local_rt)[segments[1].id]["used"]
    code, out = _cli("mark-used", DS, "--segment", segments[1].id, url=db_url, deep=deep)
    assert "marked 1 segment(s)" in out and rows(local_rt)[segments[1].id]["used"]


def test_druidflow_run_of_a_kill_spec_is_a_dry_run_unless_confirmed(local_rt, db_url, tmp_path):
    segments = seed(local_rt, [day(1)])
    unuse(local_rt, segments)
    spec = tmp_path / "kill.json"
    spec.write_text(json.dumps(kill_spec(context={"dryRun": False})))
    code, out = _cli("run", str(spec), url=db_url, deep=local_rt.storage.uri)
    assert json.loads(out)["killUnusedSegments"]["payload"] == {"numSegmentsKilled": 0, "numBatchesProcessed": 0, "numSegmentsMarkedAsUnused": 0}
    plan = details(json.loads(out))
    assert code == 0 and plan["dryRun"] is True and plan["numSegmentsToKill"] == 1 and set(rows(local_rt)) == {segments[0].id}
    code, out = _cli("run", str(spec), "--confirm", url=db_url, deep=local_rt.storage.uri)
    assert code == 0 and json.loads(out)["killUnusedSegments"]["payload"]["numSegmentsKilled"] == 1 and rows(local_rt) == {}


@pytest.mark.parametrize(("context", "lock_type"), [({}, "EXCLUSIVE"), ({"useConcurrentLocks": True}, "REPLACE")])
def test_the_kill_locks_exactly_its_interval_at_priority_0(local_rt, context, lock_type):
    segments = seed(local_rt, [day(1)])
    unuse(local_rt, segments)
    seen = []

    def look(step: kill.KillStep) -> None:
        if step.step == "claimed":
            seen.extend((str(lk.interval), lk.type.value, lk.priority) for lk in local_rt.lockbox.locks(DS))

    kill.run(kill_spec("2024-01-01/2024-01-15", context=context), local_rt, checkpoint=look)
    assert seen == [("2024-01-01T00:00:00.000Z/2024-01-15T00:00:00.000Z", lock_type, 0)]
    assert local_rt.lockbox.locks(DS) == []  # released at the end
