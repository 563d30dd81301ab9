"""Streaming (priority 75, APPEND locks) while a batch index (50) and a compaction (25) work on the same
intervals: no streaming row is lost or duplicated, and the batch rows arrive too.

A lower-priority task whose EXCLUSIVE lock overlaps a streaming task's APPEND lock is revoked and publishes
nothing; one that publishes first makes the streaming tasks append into its new version; a REPLACE lock
(``useConcurrentLocks``) coexists with streaming, and a streaming publish after the replace copies its segments
into the new version. So compaction never drops streaming rows, and the batch index here appends. An
*overwriting* batch index replaces whatever the chunk held before its lock, by definition, streaming rows
included (as in Druid).
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from druidflow.exceptions import DruidflowError
from druidflow.locks import APPEND_VERSION
from druidflow.segments.timeline import Timeline
from druidflow.streaming import supervisor
from druidflow.tasks.dispatch import run_task
from tests.streaming.conftest import events_schema, kafka_spec
from tests.streaming.helpers import BASE_MS, messages, visible_ids

BATCH_IDS = range(1_000_000, 1_000_300)


def _batch_index(data_source: str) -> dict:
    rows = [{"ts": BASE_MS + (i - BATCH_IDS.start) * 30_000, "id": i, "page": "batch", "n": 1} for i in BATCH_IDS]
    return {
        "type": "index",
        "spec": {
            "dataSchema": events_schema(data_source, ["2024-01-01T00:00:00Z/2024-01-01T03:00:00Z"]),
            "ioConfig": {"type": "index", "inputSource": {"type": "inline", "data": "\n".join(json.dumps(r) for r in rows)},
                         "inputFormat": {"type": "json"}, "appendToExisting": True},
        },
    }


def _compact(data_source: str, **context) -> dict:
    return {"type": "compact", "dataSource": data_source,
            "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01T00:00:00Z/2024-01-01T03:00:00Z"}},
            **({"context": context} if context else {})}


def _until_done(spec: dict, rt, deadline: float) -> tuple[int, int]:
    """Run the task until it succeeds (it may be refused or revoked by streaming); (attempts, successes)."""
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        try:
            run_task(spec, rt)
            return attempts, 1
        except DruidflowError:
            time.sleep(0.05)
    return attempts, 0


@pytest.mark.slow
def test_batch_index_and_compaction_while_streaming_lose_no_streaming_row(kafka_broker, runtime):
    topic = kafka_broker.create_topic(partitions=2)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="mixed", maxMessagesPerTask=150)
    total = 4000  # 1 s apart: a little over an hour, so streaming writes into the hours the batch tasks touch
    stop = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for first in range(0, total, 200):
                kafka_broker.produce(topic, messages(first, 200), partitions=2)
                time.sleep(0.05)
        except BaseException as exc:
            errors.append(exc)

    def stream() -> None:
        try:
            supervisor.supervise(spec, runtime, max_cycles=10_000, on_cycle=lambda c: stop.is_set() and _halt())
        except _Halt:
            pass
        except BaseException as exc:
            errors.append(exc)

    producer, streamer = threading.Thread(target=produce), threading.Thread(target=stream)
    producer.start()
    streamer.start()
    deadline = time.monotonic() + 120
    index_result = _until_done(_batch_index("mixed"), runtime, deadline)
    compact_results = [_until_done(_compact("mixed"), runtime, deadline) for _ in range(2)]
    # and with concurrent append and replace: a REPLACE lock that streaming's APPEND locks do not revoke
    compact_results.append(_until_done(_compact("mixed", useConcurrentLocks=True), runtime, deadline))
    producer.join(120)
    stop.set()
    streamer.join(120)
    assert not errors, errors

    supervisor.supervise(spec, runtime, until_caught_up=True, max_cycles=60)
    assert _until_done(_compact("mixed"), runtime, time.monotonic() + 60)[1] == 1  # and once more, quietly
    seen = visible_ids(runtime, "mixed")
    streamed = {i: seen.get(i, 0) for i in range(total)}
    assert [i for i, c in streamed.items() if c != 1] == []
    assert index_result[1] == 1 and all(seen.get(i) == 1 for i in BATCH_IDS)
    assert sum(seen.values()) == total + len(BATCH_IDS)
    print(f"batch index attempts {index_result}, compactions while streaming {compact_results}")


class _Halt(Exception):
    pass


def _halt() -> None:
    raise _Halt()


def test_streaming_appends_into_the_coarser_chunks_a_compaction_made(kafka_broker, runtime):
    """HOUR streamed, compacted to DAY: later messages of that day go into the DAY chunk (Druid's allocation)."""
    topic = kafka_broker.create_topic(partitions=1)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="coarse")
    kafka_broker.produce(topic, messages(0, 5000), partitions=1)  # 2024-01-01 00:00 .. 01:23
    supervisor.supervise(spec, runtime, until_caught_up=True, max_cycles=5)
    run_task({**_compact("coarse"), "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/2024-01-02"}},
              "granularitySpec": {"segmentGranularity": "DAY"}}, runtime)
    kafka_broker.produce(topic, messages(5000, 3000) + [{**messages(9_000_000, 1)[0], "ts": BASE_MS + 86_400_000 + 5}], partitions=1)
    cycles = supervisor.supervise(spec, runtime, until_caught_up=True, max_cycles=5)
    (report,) = cycles[-1].reports
    assert report.status == "SUCCESS" and report.row_stats.thrown_away == 0, report
    seen = visible_ids(runtime, "coarse")
    assert sum(seen.values()) == 8001 and max(seen.values()) == 1
    intervals = {str(s.interval) for s in runtime.store.used_segments("coarse")}
    assert intervals == {"2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z", "2024-01-02T00:00:00.000Z/2024-01-02T01:00:00.000Z"}


def test_a_replace_committed_between_allocation_and_publish_gets_the_streamed_rows(kafka_broker, runtime, monkeypatch):
    """Concurrent append and replace: a compaction under a REPLACE lock publishes a new version of the chunk while
    a streaming task holds built, unpublished segments of the old one; the streaming publish copies them into the
    new version, so no row vanishes and none is counted twice."""
    from druidflow.streaming import kafka_build

    topic = kafka_broker.create_topic(partitions=1)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="upgrade")
    kafka_broker.produce(topic, messages(0, 100), partitions=1)
    supervisor.supervise(spec, runtime, until_caught_up=True, max_cycles=5)
    kafka_broker.produce(topic, messages(100, 50), partitions=1)

    real_build = kafka_build.build
    compacted = []

    def build_then_compact(*args, **kwargs):
        out = real_build(*args, **kwargs)
        run_task({**_compact("upgrade", useConcurrentLocks=True),
                  "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01T00:00:00Z/2024-01-01T01:00:00Z"}}},
                 runtime)
        compacted.append(True)
        return out

    monkeypatch.setattr("druidflow.streaming.kafka_task.build", build_then_compact)
    supervisor.supervise(spec, runtime, until_caught_up=True, max_cycles=5)
    assert compacted
    seen = visible_ids(runtime, "upgrade")
    assert sum(seen.values()) == 150 and max(seen.values()) == 1 and set(seen) == set(range(150))
    visible_versions = {e.version for e in Timeline(runtime.store.used_segments("upgrade")).visible()}
    assert visible_versions and APPEND_VERSION not in visible_versions  # what is visible is the compaction's version
