"""One Kafka task's rules: rejection periods, parse exceptions, tombstones, replicas, and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from druidflow.intervals import now_ms
from druidflow.streaming import kafka_build, kafka_task, offsets, supervisor
from druidflow.streaming.kafka_spec import parse_supervisor_spec
from druidflow.tasks.runtime import Runtime
from tests.streaming.conftest import kafka_spec
from tests.streaming.helpers import messages, visible_ids

HOUR = 3_600_000


def _one_task(sup, rt):
    tasks = supervisor.plan_tasks(sup, rt)
    assert len(tasks) == 1
    return kafka_task.run(tasks[0], rt)


def test_late_and_early_messages_are_thrown_away(kafka_broker, runtime):
    topic = kafka_broker.create_topic(partitions=1)
    now = now_ms()
    values = [
        {"ts": now - 3 * HOUR, "id": 1, "page": "late", "n": 1},
        {"ts": now - 10 * 60_000, "id": 2, "page": "ok", "n": 1},
        {"ts": now + 30 * 60_000, "id": 3, "page": "ok", "n": 1},
        {"ts": now + 5 * HOUR, "id": 4, "page": "early", "n": 1},
    ]
    kafka_broker.produce(topic, values, partitions=1)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="windowed", lateMessageRejectionPeriod="PT1H",
                      earlyMessageRejectionPeriod="PT1H", taskDuration="PT1H")
    report = _one_task(parse_supervisor_spec(spec), runtime)
    assert report.status == "SUCCESS"
    assert report.row_stats.processed == 2 and report.row_stats.thrown_away == 2
    assert set(visible_ids(runtime, "windowed")) == {2, 3}
    assert offsets.committed(runtime.store.engine, "windowed").offsets == {0: 4}  # thrown-away messages are consumed


def test_unparseable_messages_follow_max_parse_exceptions(kafka_broker, runtime):
    topic = kafka_broker.create_topic(partitions=1)
    kafka_broker.produce(topic, [json.dumps(m).encode() for m in messages(0, 5)] + [b"{not json", b"{\"ts\": \"never\"}"], partitions=1)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="strict")
    spec["spec"]["tuningConfig"]["maxParseExceptions"] = 1
    sup = parse_supervisor_spec(spec)
    report = _one_task(sup, runtime)
    assert report.status == "FAILED" and "maxParseExceptions" in report.error
    assert offsets.committed(runtime.store.engine, "strict") is None and visible_ids(runtime, "strict") == {}
    assert runtime.store.pending_segments("strict") == []

    spec["spec"]["tuningConfig"]["maxParseExceptions"] = 2
    spec["spec"]["tuningConfig"]["maxSavedParseExceptions"] = 5
    report = _one_task(parse_supervisor_spec(spec), runtime)
    assert report.status == "SUCCESS" and report.row_stats.unparseable == 2 and report.row_stats.processed == 5
    saved = runtime.store.get_task(report.task_id).report["ingestionStatsAndErrors"]["payload"]["unparseableEvents"]["buildSegments"]
    assert len(saved) == 2
    assert offsets.committed(runtime.store.engine, "strict").offsets == {0: 7}


def test_tombstones_are_consumed_and_thrown_away(kafka_broker, runtime):
    topic = kafka_broker.create_topic(partitions=1)
    kafka_broker.produce(topic, [messages(0, 1)[0], None, messages(1, 1)[0]], partitions=1)
    report = _one_task(parse_supervisor_spec(kafka_spec(kafka_broker.bootstrap, topic, data_source="tomb")), runtime)
    assert report.row_stats.thrown_away == 1 and report.row_stats.processed == 2
    assert offsets.committed(runtime.store.engine, "tomb").offsets == {0: 3}


def test_replicas_read_the_same_range_and_exactly_one_publishes(kafka_broker, runtime):
    topic = kafka_broker.create_topic(partitions=2)
    kafka_broker.produce(topic, messages(0, 400), partitions=2)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="replicated", replicas=2)
    cycle = supervisor.run_cycle(parse_supervisor_spec(spec), runtime, supervisor.inline_runner(runtime))
    assert len(cycle.reports) == 2 and cycle.reports[0].start == cycle.reports[1].start
    assert sorted(r.published for r in cycle.reports) == [False, True]
    loser = next(r for r in cycle.reports if not r.published)
    assert loser.error_type == "OffsetsMismatchError"
    seen = visible_ids(runtime, "replicated")
    assert sum(seen.values()) == 400 and max(seen.values()) == 1
    assert runtime.store.pending_segments("replicated") == []


def test_on_postgresql_with_a_task_per_partition(kafka_broker, pg_url, tmp_path):
    rt = Runtime.from_urls(pg_url, str(tmp_path / "deep"), work_dir=tmp_path / "work")
    topic = kafka_broker.create_topic(partitions=3)
    kafka_broker.produce(topic, messages(0, 900), partitions=3)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="pg_events", taskCount=3)
    cycles = supervisor.supervise(spec, rt, until_caught_up=True, max_cycles=10)
    assert cycles[-1].caught_up and len(cycles[0].reports) == 3
    seen = visible_ids(rt, "pg_events")
    assert sum(seen.values()) == 900 and set(seen) == set(range(900))


def test_a_task_overrunning_completion_timeout_is_killed_and_publishes_nothing(kafka_broker, sqlite_url, tmp_path):
    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), work_dir=tmp_path / "work")
    topic = kafka_broker.create_topic(partitions=1)
    kafka_broker.produce(topic, messages(0, 10), partitions=1)
    sup = parse_supervisor_spec(kafka_spec(kafka_broker.bootstrap, topic, data_source="slow"))
    runner = supervisor.process_runner(sqlite_url, str(tmp_path / "deep"), timeout_s=0.05)
    report = runner(supervisor.plan_tasks(sup, rt)[0])
    assert report.status == "FAILED" and "completionTimeout" in report.error
    assert offsets.committed(rt.store.engine, "slow") is None
    ok = supervisor.process_runner(sqlite_url, str(tmp_path / "deep"), timeout_s=120)(supervisor.plan_tasks(sup, rt)[0])
    assert ok.status == "SUCCESS" and ok.published and offsets.committed(rt.store.engine, "slow").offsets == {0: 10}


def test_offsets_gone_from_the_broker_stop_the_supervisor_unless_reset_automatically(runtime, monkeypatch):
    # tansu cannot truncate a partition (no retention, no DeleteRecords), so the broker's answer is stood in for.
    import pytest

    from druidflow.exceptions import InputError

    monkeypatch.setattr(supervisor, "_broker_offsets", lambda sup: ([0, 1], {0: (5, 10), 1: (0, 3)}))
    spec = kafka_spec("127.0.0.1:9", "gone", data_source="gone")
    offsets.reset(runtime.store.engine, "gone", "gone", {0: 2, 1: 1})
    with pytest.raises(InputError, match="resetOffsetAutomatically"):
        supervisor.plan_tasks(parse_supervisor_spec(spec), runtime)
    assert offsets.committed(runtime.store.engine, "gone").offsets == {0: 2, 1: 1}
    spec["spec"]["tuningConfig"]["resetOffsetAutomatically"] = True
    (task,) = supervisor.plan_tasks(parse_supervisor_spec(spec), runtime)
    assert task.start == {0: 5, 1: 1}
    assert offsets.committed(runtime.store.engine, "gone").offsets == {0: 5, 1: 1}


def test_a_commit_that_fails_after_it_happened_is_recognised_as_published(kafka_broker, runtime, monkeypatch):
    import contextlib

    import sqlalchemy as sa

    topic = kafka_broker.create_topic(partitions=1)
    kafka_broker.produce(topic, messages(0, 50), partitions=1)
    sup = parse_supervisor_spec(kafka_spec(kafka_broker.bootstrap, topic, data_source="lost_ack"))
    real = runtime.lockbox.critical_section

    @contextlib.contextmanager
    def commit_then_fail(*args, **kwargs):
        with real(*args, **kwargs) as cs:
            yield cs
        raise sa.exc.OperationalError("COMMIT", {}, Exception("connection lost after commit"))

    monkeypatch.setattr(runtime.lockbox, "critical_section", commit_then_fail)
    report = _one_task(sup, runtime)
    assert report.status == "SUCCESS" and report.published
    seen = visible_ids(runtime, "lost_ack")
    assert sum(seen.values()) == 50
    assert all(runtime.storage.exists(s.load_spec) for s in runtime.store.used_segments("lost_ack"))  # files kept


def test_a_task_whose_process_was_lost_is_marked_failed_later(runtime):
    spec = kafka_spec("127.0.0.1:9", "lost", data_source="lost", taskDuration="PT0.1S", completionTimeout="PT0.1S")
    sup = parse_supervisor_spec(spec)
    runtime.store.insert_task("index_kafka_lost_x", "index_kafka", "lost", "index_kafka_lost", {})
    import time

    time.sleep(0.3)
    assert supervisor.reap_lost_tasks(sup, runtime) == ["index_kafka_lost_x"]
    assert runtime.store.get_task("index_kafka_lost_x").status == "FAILED"


def test_a_quick_chunk_guess_that_misses_a_chunk_costs_time_not_rows(kafka_broker, runtime, monkeypatch):
    real = kafka_build.quick_chunks
    monkeypatch.setattr(kafka_build, "quick_chunks", lambda *a: (real(*a) or [])[:1])  # drop every chunk but one
    topic = kafka_broker.create_topic(partitions=1)
    kafka_broker.produce(topic, messages(0, 8000), partitions=1)  # 8000 s: three HOUR chunks
    report = _one_task(parse_supervisor_spec(kafka_spec(kafka_broker.bootstrap, topic, data_source="guess")), runtime)
    assert report.status == "SUCCESS" and report.row_stats.processed == 8000 and report.row_stats.thrown_away == 0
    seen = visible_ids(runtime, "guess")
    assert sum(seen.values()) == 8000 and max(seen.values()) == 1
    assert runtime.store.pending_segments("guess") == []


def test_quick_chunks_only_where_the_timestamp_column_decides(tmp_path):
    spec = kafka_spec("127.0.0.1:9", "t")
    path = tmp_path / "m.txt"
    path.write_text("\n".join(json.dumps(m) for m in messages(0, 4000)) + "\n")
    sup = parse_supervisor_spec(spec)
    chunks = kafka_build.quick_chunks(sup.index_task("x", str(path)), (None, None))
    assert [str(c) for c in chunks] == ["2024-01-01T00:00:00.000Z/2024-01-01T01:00:00.000Z",
                                        "2024-01-01T01:00:00.000Z/2024-01-01T02:00:00.000Z"]
    flat = json.loads(json.dumps(spec))
    flat["spec"]["ioConfig"]["inputFormat"] = {"type": "json", "flattenSpec": {"fields": [{"type": "path", "name": "x", "expr": "$.ts"}]}}
    assert kafka_build.quick_chunks(parse_supervisor_spec(flat).index_task("x", str(path)), (None, None)) is None
    moved = json.loads(json.dumps(spec))
    moved["spec"]["dataSchema"]["transformSpec"] = {"transforms": [{"type": "expression", "name": "ts", "expression": "ts + 86400000"}]}
    assert kafka_build.quick_chunks(parse_supervisor_spec(moved).index_task("x", str(path)), (None, None)) is None
    path.write_text("not json\n")
    assert kafka_build.quick_chunks(sup.index_task("x", str(path)), (None, None)) is None


def test_a_consumer_property_the_client_rejects_is_named(runtime):
    import pytest

    from druidflow.exceptions import SpecError

    spec = kafka_spec("127.0.0.1:9", "t", data_source="props")
    spec["spec"]["ioConfig"]["consumerProperties"]["ssl.truststore.location"] = "/etc/kafka/truststore.jks"
    with pytest.raises(SpecError, match=r"spec.ioConfig.consumerProperties.*ssl.truststore.location"):
        supervisor.plan_tasks(parse_supervisor_spec(spec), runtime)


def test_quick_chunks_leaves_a_bare_null_message_to_the_full_parse(tmp_path):
    # pyarrow's JSON reader crashes the process on a block starting with a bare ``null`` line (a message whose value
    # is the JSON null): quick_chunks must not hand it such a spool. Run in a child, where a crash fails the test.
    path = tmp_path / "m.txt"
    path.write_text("null\n" + "\n".join(json.dumps(m) for m in messages(0, 100)) + "\n")
    code = (
        "import sys\n"
        "from druidflow.streaming import kafka_build\n"
        "from druidflow.streaming.kafka_spec import parse_supervisor_spec\n"
        "from tests.streaming.conftest import kafka_spec\n"
        "sup = parse_supervisor_spec(kafka_spec('127.0.0.1:9', 't'))\n"
        "print(kafka_build.quick_chunks(sup.index_task('x', sys.argv[1]), (None, None)))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "None"
