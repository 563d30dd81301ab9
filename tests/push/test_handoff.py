"""Handoff: a closed window's spooled events are published once, with the spool rows, in one transaction."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from druidflow.exceptions import PublishConflictError
from druidflow.intervals import Interval, parse_instant
from druidflow.push import spool
from druidflow.push.handoff import CRASH_ENV, handoff
from druidflow.push.receiver import receive
from druidflow.push.runner import RealtimeRunner, drain

from .helpers import events, ndjson, published_ids, realtime_spec, realtime_task

NOW = parse_instant("2024-05-01T12:30:00Z")
HOUR = Interval.parse("2024-05-01T12/PT1H")


def _push(rt, task, ids, ts=NOW):
    return receive(task, ndjson(events(ts, ids)), rt.store.engine, clock=lambda: NOW)


def test_handoff_publishes_the_window_and_trims_the_spool(rt):
    task = realtime_task(max_rows_in_memory=7)
    _push(rt, task, range(25))
    _push(rt, task, range(25, 40))
    report = handoff(task, HOUR, rt)
    assert (report.events, report.batches, report.row_stats.processed) == (40, 2, 40)
    assert sorted(published_ids(rt, "events"), key=int) == [str(i) for i in range(40)]
    assert spool.pending_events(rt.store.engine, "events") == 0
    [row] = spool.summary(rt.store.engine, "events")
    assert (row.committed_events, row.last_task_id) == (40, report.task_id)
    record = rt.store.get_task(report.task_id)
    assert (record.type, record.status) == ("index_realtime", "SUCCESS")
    assert handoff(task, HOUR, rt) is None


def test_late_events_of_a_handed_off_bucket_become_another_partition(rt):
    task = realtime_task()
    _push(rt, task, ["a", "b"])
    first = handoff(task, HOUR, rt)
    _push(rt, task, ["c"])
    second = handoff(task, HOUR, rt)
    assert [s.partition_num for s in first.segments] == [0] and [s.partition_num for s in second.segments] == [1]
    assert sorted(published_ids(rt, "events")) == ["a", "b", "c"]


def test_a_handoff_whose_rows_were_taken_by_another_publishes_nothing(rt):
    task = realtime_task()
    _push(rt, task, ["a"])
    taken = spool.entries(rt.store.engine, "events", HOUR)
    with rt.store.engine.begin() as conn:
        spool.consume(conn, "events", taken, "someone_else")
    with rt.store.engine.begin() as conn, pytest.raises(PublishConflictError):
        spool.consume(conn, "events", taken, "me")
    assert published_ids(rt, "events") == []


def test_runner_hands_off_only_closed_windows(rt):
    task = realtime_task(segment="HOUR", window="PT10M", handoff_delay="PT5M")
    _push(rt, task, ["a"])
    clock = {"now": parse_instant("2024-05-01T13:14:59Z")}
    runner = RealtimeRunner(task, rt, clock=lambda: clock["now"])
    assert runner.run_once() == []
    clock["now"] = parse_instant("2024-05-01T13:15:00Z")
    assert [r.events for r in runner.run_once()] == [1]
    assert published_ids(rt, "events") == ["a"]


def test_drain_hands_off_open_windows(rt):
    task = realtime_task()
    _push(rt, task, ["a", "b"])
    assert drain(task, rt) == 2
    assert spool.pending_events(rt.store.engine, "events") == 0


@pytest.mark.parametrize("point", ["after_build", "after_publish"])
def test_a_handoff_killed_at_either_side_of_its_transaction_publishes_each_event_once(rt, tmp_path, db_url, point):
    task = realtime_task()
    _push(rt, task, range(10))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(realtime_spec()))
    env = {**os.environ, CRASH_ENV: point, "DRUIDFLOW_WORK_DIR": str(tmp_path / "work2")}
    cmd = [sys.executable, "-m", "druidflow.cli", "--metadata-url", db_url, "--deep-storage", str(tmp_path / "deep"),
           "realtime", str(spec_file), "--until-empty", "--poll", "0.05"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    expected_pending = 10 if point == "after_build" else 0
    assert spool.pending_events(rt.store.engine, "events") == expected_pending
    assert drain(task, rt) == expected_pending
    assert sorted(published_ids(rt, "events"), key=int) == [str(i) for i in range(10)]


def test_a_handoff_appends_to_a_chunk_a_batch_index_task_wrote(rt):
    from druidflow.tasks import index

    batch = "\n".join(json.dumps(e) for e in events(NOW, ["batch1", "batch2"]))
    schema = realtime_spec()["spec"]["dataSchema"]
    index.run({
        "type": "index",
        "spec": {
            "dataSchema": {**schema, "granularitySpec": {**schema["granularitySpec"], "intervals": [str(HOUR)]}},
            "ioConfig": {"type": "index", "inputSource": {"type": "inline", "data": batch}, "inputFormat": {"type": "json"}},
        },
    }, rt)
    task = realtime_task()
    _push(rt, task, ["pushed"])
    report = handoff(task, HOUR, rt)
    [batch_segment] = [r.segment for r in rt.store.segments("events") if r.segment.partition_num == 0]
    assert [(s.version, s.partition_num) for s in report.segments] == [(batch_segment.version, 1)]
    assert sorted(published_ids(rt, "events")) == ["batch1", "batch2", "pushed"]


def test_a_bucket_locked_by_a_higher_priority_task_waits_in_the_spool(rt):
    spec = realtime_spec()
    spec["context"] = {"taskLockTimeout": 200}
    from druidflow.push.spec import RealtimeTask

    task = RealtimeTask.load(spec)
    _push(rt, task, ["a"])
    assert rt.lockbox.try_lock("reindex_events", datasource="events", interval=HOUR, priority=100).acquired
    runner = RealtimeRunner(task, rt)
    assert runner.run_once() == []
    assert spool.pending_events(rt.store.engine, "events") == 1
    assert [t.status for t in rt.store.list_tasks(datasource="events")] == ["FAILED"]
    rt.lockbox.release_all("reindex_events")
    assert [r.events for r in runner.run_once()] == [1]
    assert published_ids(rt, "events") == ["a"]


def test_handoff_records_of_a_dead_process_are_marked_failed(rt):
    from druidflow.intervals import now_ms
    from druidflow.push.handoff import reap_dead_handoffs

    task = realtime_task()
    rt.store.insert_task("index_realtime_events_dead", "index_realtime", "events", "index_append_events", {})
    rt.store.insert_task("index_realtime_events_alive", "index_realtime", "events", "index_append_events", {})
    assert rt.lockbox.try_lock("index_realtime_events_alive", datasource="events", interval=HOUR, priority=75,
                               lock_type="APPEND", group_id="index_append_events").acquired
    assert reap_dead_handoffs(task, rt) == []  # too recent: it may still be waiting for its lock
    later = now_ms() + rt.lockbox.lease_ms + task.template.lock_timeout_ms + 1
    assert reap_dead_handoffs(task, rt, clock_ms=later) == ["index_realtime_events_dead"]
    assert rt.store.get_task("index_realtime_events_dead").status == "FAILED"
    assert rt.store.get_task("index_realtime_events_alive").status == "RUNNING"


def test_a_handoff_whose_rows_go_while_it_reads_them_publishes_nothing(rt, monkeypatch):
    from druidflow.push import handoff as handoff_module

    task = realtime_task()
    _push(rt, task, ["a", "b"])
    stale = spool.entries(rt.store.engine, "events", HOUR)
    handoff(task, HOUR, rt)
    monkeypatch.setattr(handoff_module.spool, "entries", lambda *a: stale)  # read before the first one committed
    with pytest.raises(PublishConflictError):
        handoff(task, HOUR, rt)
    assert sorted(published_ids(rt, "events")) == ["a", "b"]
    assert sorted(t.status for t in rt.store.list_tasks(datasource="events")) == ["FAILED", "SUCCESS"]


def test_a_handoff_whose_rows_go_while_it_builds_publishes_nothing_and_deletes_its_files(rt, monkeypatch, tmp_path):
    from druidflow.push import handoff as handoff_module

    task = realtime_task()
    _push(rt, task, ["a", "b"])
    real_build = handoff_module.index.build_units

    def build_then_lose_the_race(*args, **kwargs):
        result = real_build(*args, **kwargs)
        rows = spool.entries(rt.store.engine, "events", HOUR)
        with rt.store.engine.begin() as conn:  # another handoff publishes the same rows meanwhile
            spool.consume(conn, "events", rows, "the_other_handoff")
        return result

    monkeypatch.setattr(handoff_module.index, "build_units", build_then_lose_the_race)
    with pytest.raises(PublishConflictError):
        handoff(task, HOUR, rt)
    assert published_ids(rt, "events") == [] and rt.store.segments("events") == []
    assert [p for p in (tmp_path / "deep").rglob("*") if p.is_file()] == []
