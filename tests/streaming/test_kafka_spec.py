"""Druid's Kafka supervisor spec: both forms, defaults, and a field-named error for every kind of mistake."""

from __future__ import annotations

import copy

import pytest

from druidflow.exceptions import SpecError
from druidflow.streaming.kafka_spec import KAFKA_TASK_PRIORITY, parse_supervisor_spec
from tests.streaming.conftest import kafka_spec

SPEC = kafka_spec("127.0.0.1:9092", "events-topic")


def test_modern_form_defaults_and_the_derived_index_task():
    sup = parse_supervisor_spec(SPEC)
    assert sup.id == sup.data_source == "events"
    io = sup.io
    assert (io.task_count, io.replicas, io.task_duration, io.completion_timeout, io.use_earliest_offset) == (1, 1, "PT1H", "PT30M", True)
    task = sup.index_task("index_kafka_events_x", "/tmp/m.txt")
    assert task.lock_type == "APPEND" and task.priority == KAFKA_TASK_PRIORITY
    assert task.spec.io_config.append_to_existing
    assert task.spec.tuning_config.effective_partitions_spec.max_rows_per_segment == 5000
    assert sup.tuning.max_rows_in_memory == 150_000  # Druid's Kafka default, not the index task's


def test_a_spec_survives_its_own_dump():
    sup = parse_supervisor_spec(SPEC)
    assert parse_supervisor_spec(sup.model_dump()) == sup


def test_legacy_top_level_form_with_a_classic_parser():
    legacy = {
        "type": "kafka",
        "dataSchema": {
            "dataSource": "wiki",
            "parser": {"type": "string", "parseSpec": {"format": "json", "timestampSpec": {"column": "time", "format": "auto"},
                                                        "dimensionsSpec": {"dimensions": ["page"]}}},
            "metricsSpec": [{"type": "count", "name": "count"}],
            "granularitySpec": {"type": "uniform", "segmentGranularity": "HOUR", "queryGranularity": "NONE"},
        },
        "ioConfig": {"topic": "wiki", "consumerProperties": {"bootstrap.servers": "localhost:9092"}, "taskCount": 1,
                     "replicas": 1, "taskDuration": "PT1H"},
        "tuningConfig": {"type": "kafka", "maxRowsPerSegment": 5000000, "reportParseExceptions": False},
    }
    sup = parse_supervisor_spec(legacy)
    assert sup.id == "wiki" and sup.io.input_format == {"type": "json"}
    assert sup.spec.data_schema["timestampSpec"]["column"] == "time"
    csv = copy.deepcopy(legacy)
    csv["dataSchema"]["parser"]["parseSpec"] = {"format": "csv", "columns": ["time", "page"], "timestampSpec": {"column": "time"},
                                                "dimensionsSpec": {"dimensions": ["page"]}}
    assert parse_supervisor_spec(csv).io.input_format["type"] == "csv"


def _mutated(change):
    spec = copy.deepcopy(SPEC)
    change(spec["spec"])
    return spec


@pytest.mark.parametrize(
    "change, path",
    [
        (lambda s: s["ioConfig"].pop("topic"), "spec.ioConfig.topic"),
        (lambda s: s["ioConfig"].update(topic="bad topic!"), "spec.ioConfig.topic"),
        (lambda s: s["ioConfig"].update(taskCount=0), "spec.ioConfig.taskCount"),
        (lambda s: s["ioConfig"].update(replicas=-1), "spec.ioConfig.replicas"),
        (lambda s: s["ioConfig"].update(taskDuration="an hour"), "spec.ioConfig.taskDuration"),
        (lambda s: s["ioConfig"].update(taskDuration="P1M"), "spec.ioConfig.taskDuration"),
        (lambda s: s["ioConfig"].update(lateMessageRejectionPeriod="PTX"), "spec.ioConfig.lateMessageRejectionPeriod"),
        (lambda s: s["ioConfig"].update(lateMessageRejectionPeriod="PT1H", lateMessageRejectionStartDateTime="2024-01-01"),
         "spec.ioConfig.lateMessageRejectionStartDateTime"),
        (lambda s: s["ioConfig"].update(autoScalerConfig={"enableTaskAutoScaler": True}), "spec.ioConfig.autoScalerConfig"),
        (lambda s: s["ioConfig"].update(topicz="x"), "spec.ioConfig.topicz"),
        (lambda s: s["ioConfig"]["consumerProperties"].pop("bootstrap.servers"), "spec.ioConfig.consumerProperties"),
        (lambda s: s["ioConfig"]["consumerProperties"].update({"enable.auto.commit": "true"}), "spec.ioConfig.consumerProperties"),
        (lambda s: s["ioConfig"].pop("inputFormat"), "spec.ioConfig.inputFormat"),
        (lambda s: s["ioConfig"].update(inputFormat={"type": "xml"}), "spec.ioConfig.inputFormat.type"),
        (lambda s: s["ioConfig"].update(inputFormat={"type": "csv"}), "spec.ioConfig.inputFormat"),
        (lambda s: s["dataSchema"]["granularitySpec"].update(segmentGranularity="FORTNIGHT"), "spec.dataSchema.granularitySpec.segmentGranularity"),
        (lambda s: s["dataSchema"]["granularitySpec"].update(intervals=["2024-01-01/2024-01-02"]), "spec.dataSchema.granularitySpec.intervals"),
        (lambda s: s["dataSchema"]["metricsSpec"].append({"type": "longSum", "name": "count", "fieldName": "n"}), "spec.dataSchema.metricsSpec[2].name"),
        (lambda s: s["dataSchema"].pop("dataSource"), "spec.dataSchema.dataSource"),
        (lambda s: s["tuningConfig"].update(type="index"), "spec.tuningConfig.type"),
        (lambda s: s["tuningConfig"].update(maxRowsPerSegment=0), "spec.tuningConfig.maxRowsPerSegment"),
        (lambda s: s["tuningConfig"].update(maxParseExceptions=-2), "spec.tuningConfig.maxParseExceptions"),
        (lambda s: s["tuningConfig"].update(chatRetries=3), "spec.tuningConfig.chatRetries"),
        (lambda s: s["tuningConfig"].update(handoffConditionTimeout=5), "spec.tuningConfig.handoffConditionTimeout"),
        (lambda s: s["tuningConfig"].update(intermediatePersistPeriod="PT0S"), "spec.tuningConfig.intermediatePersistPeriod"),
        (lambda s: s["tuningConfig"].update(indexSpec={"dimensionCompression": "snappy"}), "spec.tuningConfig.indexSpec.dimensionCompression"),
        (lambda s: s["tuningConfig"].update(maxRowsInMemry=5), "spec.tuningConfig.maxRowsInMemry"),
    ],
)
def test_mistakes_are_named_by_their_path(change, path):
    with pytest.raises(SpecError) as info:
        parse_supervisor_spec(_mutated(change))
    assert info.value.path.startswith(path), (info.value.path, str(info.value))


def test_druid_defaults_of_cluster_only_fields_are_accepted():
    spec = _mutated(lambda s: s["tuningConfig"].update(chatRetries=8, httpTimeout="PT10S", handoffConditionTimeout=900000,
                                                          shutdownTimeout="PT80S", offsetFetchPeriod="PT30S"))
    assert parse_supervisor_spec(spec).tuning.max_rows_per_segment == 5000


def test_envelope_mistakes():
    with pytest.raises(SpecError, match="type"):
        parse_supervisor_spec({**SPEC, "type": "kinesis"})
    with pytest.raises(SpecError, match="not both"):
        parse_supervisor_spec({**SPEC, "dataSchema": SPEC["spec"]["dataSchema"]})
    with pytest.raises(SpecError, match="context.priority"):
        parse_supervisor_spec({**SPEC, "context": {"priority": "high"}}).priority
