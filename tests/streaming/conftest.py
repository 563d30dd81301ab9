"""Fixtures for the Kafka indexing service: one real tansu broker per test session, a runtime per test."""

from __future__ import annotations

import pytest

from tests.streaming.kafka_broker import Broker, start_broker, stop_broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory) -> Broker:
    broker = start_broker(tmp_path_factory.mktemp("tansu") / "tansu.log")
    yield broker
    stop_broker(broker)


@pytest.fixture
def runtime(sqlite_url, tmp_path):
    from druidflow.tasks.runtime import Runtime

    return Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), work_dir=tmp_path / "work")


def events_schema(data_source: str, intervals: list[str] | None = None) -> dict:
    """The dataSchema of the messages :func:`kafka_spec` reads: HOUR segments, no rollup."""
    granularity = {"segmentGranularity": "HOUR", "queryGranularity": "NONE", "rollup": False}
    if intervals is not None:
        granularity["intervals"] = intervals
    return {
        "dataSource": data_source,
        "timestampSpec": {"column": "ts", "format": "millis"},
        "dimensionsSpec": {"dimensions": [{"type": "long", "name": "id"}, "page"]},
        "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "n", "fieldName": "n"}],
        "granularitySpec": granularity,
    }


def kafka_spec(bootstrap: str, topic: str, data_source: str = "events", **io) -> dict:
    """A supervisor spec over JSON messages {"ts": millis, "id": int, "page": str, "n": int}."""
    return {
        "type": "kafka",
        "spec": {
            "dataSchema": events_schema(data_source),
            "ioConfig": {
                "topic": topic,
                "inputFormat": {"type": "json"},
                "consumerProperties": {"bootstrap.servers": bootstrap},
                "useEarliestOffset": True,
                "startDelay": "PT0S",
                "period": "PT0.2S",
                **io,
            },
            "tuningConfig": {"type": "kafka", "maxRowsPerSegment": 5000},
        },
    }
