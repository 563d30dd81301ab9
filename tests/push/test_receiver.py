"""Receiving a push: decoding, the window, buckets, the spool's capacity; every accepted event is in the spool."""

from __future__ import annotations

import json

import pytest

from druidflow.intervals import Interval, parse_instant
from druidflow.push import spool
from druidflow.push.receiver import PushError, receive

from .helpers import events, ndjson, realtime_task

NOW = parse_instant("2024-05-01T12:30:00Z")


def _spooled(rt, ds="events"):
    rows = spool.entries(rt.store.engine, ds, Interval.parse("2024-05-01T12/PT1H"))
    lines = [line for _, data in spool.payloads(rt.store.engine, [e.id for e in rows], 10**9) for line in data.splitlines() if line]
    return [json.loads(line)["id"] for line in lines]


def test_ndjson_and_array_bodies_are_spooled_before_the_answer(rt):
    task = realtime_task()
    assert receive(task, ndjson(events(NOW, range(3))), rt.store.engine, clock=lambda: NOW).sent == 3
    body = json.dumps(events(NOW, ["a", "b"])).encode()
    result = receive(task, body, rt.store.engine, clock=lambda: NOW)
    assert (result.received, result.sent) == (2, 2)
    assert sorted(_spooled(rt)) == ["0", "1", "2", "a", "b"]
    assert spool.pending_events(rt.store.engine, "events") == 5


def test_events_outside_the_window_are_thrown_away_and_not_sent(rt):
    task = realtime_task(window="PT10M")
    body = ndjson(events(NOW, ["in"]) + events(NOW - 11 * 60_000, ["old"]) + events(NOW + 11 * 60_000, ["future"])
                  + [{"ts": "not a time", "id": "bad"}, {"id": "no-ts"}])
    result = receive(task, body, rt.store.engine, clock=lambda: NOW)
    assert (result.received, result.sent, result.thrown_away) == (5, 1, 4)
    assert _spooled(rt) == ["in"]


def test_rejection_policy_none_keeps_every_parseable_event(rt):
    task = realtime_task(policy="none")
    result = receive(task, ndjson(events(NOW - 86_400_000, ["old"]) + [{"id": "no-ts"}]), rt.store.engine, clock=lambda: NOW)
    assert (result.received, result.sent) == (2, 1)


def test_events_are_spooled_per_segment_bucket(rt):
    task = realtime_task(segment="MINUTE", window="PT1H")
    receive(task, ndjson(events(NOW, ["a"]) + events(NOW + 60_000, ["b", "c"])), rt.store.engine, clock=lambda: NOW)
    buckets = spool.due_buckets(rt.store.engine, "events", None)
    assert [str(b) for b in buckets] == ["2024-05-01T12:30:00.000Z/2024-05-01T12:31:00.000Z",
                                         "2024-05-01T12:31:00.000Z/2024-05-01T12:32:00.000Z"]
    assert [e.events for e in spool.entries(rt.store.engine, "events", buckets[1])] == [2]


@pytest.mark.parametrize("body, line", [
    (b'{"ts": 1, "id": "a"}\n{"ts": 2, "id": \n{"ts": 3}\n', 2),
    (b'{"ts": 1}\n\n\n[1, 2]\n', 4),
    (b'[{"ts": 1},\n {"ts": 2,,}]', 2),
])
def test_malformed_json_fails_the_whole_push_naming_the_line(rt, body, line):
    with pytest.raises(PushError) as err:
        receive(realtime_task(), body, rt.store.engine, clock=lambda: NOW)
    assert err.value.status == 400 and f"line {line}" in str(err.value)
    assert spool.pending_events(rt.store.engine, "events") == 0


def test_a_full_spool_refuses_the_whole_push(rt):
    task = realtime_task(buffer_size=5)
    receive(task, ndjson(events(NOW, range(4))), rt.store.engine, clock=lambda: NOW)
    with pytest.raises(PushError) as err:
        receive(task, ndjson(events(NOW, range(4, 6))), rt.store.engine, clock=lambda: NOW)
    assert err.value.status == 429 and err.value.retry_after_s >= 1
    assert spool.pending_events(rt.store.engine, "events") == 4
    receive(task, ndjson(events(NOW, ["last"])), rt.store.engine, clock=lambda: NOW)
    assert spool.pending_events(rt.store.engine, "events") == 5


def test_events_whose_field_types_change_keep_their_own_timestamps_and_buckets(rt):
    task = realtime_task(segment="MINUTE", window="PT1H")
    body = ndjson([{"ts": NOW, "id": "a", "client": 1}, {"ts": NOW + 60_000, "id": "b", "client": "x"},
                   {"ts": str(NOW), "id": "c", "client": [1, 2]}, {"ts": NOW + 60_000, "id": "d", "client": None}])
    assert receive(task, body, rt.store.engine, clock=lambda: NOW).sent == 4
    per_bucket = {}
    for bucket in spool.due_buckets(rt.store.engine, "events", None):
        ids = [e.id for e in spool.entries(rt.store.engine, "events", bucket)]
        data = b"".join(d for _, d in spool.payloads(rt.store.engine, ids, 10**9))
        per_bucket[str(bucket)[11:16]] = sorted(json.loads(line)["id"] for line in data.splitlines() if line)
    assert per_bucket == {"12:30": ["a", "c"], "12:31": ["b", "d"]}


def test_a_push_bigger_than_the_whole_spool_is_413_not_429(rt):
    with pytest.raises(PushError) as err:
        receive(realtime_task(buffer_size=5), ndjson(events(NOW, range(6))), rt.store.engine, clock=lambda: NOW)
    assert err.value.status == 413 and "bufferSize 5" in str(err.value)


def test_sqlite_spool_commits_are_fsynced(sqlite_url):
    """WAL with synchronous=FULL: a COMMIT returns only after the WAL is on disk, so a 2xx survives a machine crash."""
    from druidflow.metadata.engine import make_engine

    with make_engine(sqlite_url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
