"""The supervisor DAG factory: one DAG per spec from a spec folder, plan >> mapped kafka_task, period schedule."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.streaming.conftest import kafka_broker, kafka_spec  # noqa: F401 (kafka_broker is a fixture)


def test_spec_folder_gives_one_dag_per_spec(tmp_path, monkeypatch):
    from druidflow.airflow.kafka_dags import SPEC_DIR_ENV, configured_specs, supervisor_dag

    for ds in ("clicks", "views"):
        (tmp_path / f"{ds}.json").write_text(json.dumps(kafka_spec("127.0.0.1:9", "t", data_source=ds, period="PT10S")))
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path))
    dags = [supervisor_dag(s) for s in configured_specs()]
    assert [d.dag_id for d in dags] == ["druidflow_kafka_clicks", "druidflow_kafka_views"]
    dag = dags[0]
    assert dag.schedule == timedelta(seconds=10) or getattr(dag, "timetable", None) is not None
    assert dag.max_active_runs == 1
    assert set(dag.task_dict) == {"plan", "kafka_task"}
    assert dag.task_dict["plan"].downstream_task_ids == {"kafka_task"}


def test_a_bad_spec_fails_with_its_field_path():
    from druidflow.airflow.kafka_dags import supervisor_dag
    from druidflow.exceptions import SpecError

    bad = kafka_spec("127.0.0.1:9", "t")
    bad["spec"]["ioConfig"]["taskCount"] = 0
    with pytest.raises(SpecError, match=r"spec.ioConfig.taskCount"):
        supervisor_dag(bad)


class _TI:
    try_number = 1


def test_plan_then_mapped_tasks_publish_exactly_once_and_a_retry_publishes_nothing(kafka_broker, monkeypatch, sqlite_url, tmp_path):
    from druidflow.metadata.store import MetadataStore
    from druidflow.operators.kafka import KafkaSupervisorPlanOperator, KafkaTaskOperator
    from druidflow.streaming import offsets
    from druidflow.tasks.runtime import Runtime
    from tests.streaming.helpers import messages, visible_ids

    MetadataStore(sqlite_url).migrate()
    monkeypatch.setenv("AIRFLOW_CONN_DRUIDFLOW_METADATA", sqlite_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE",
        json.dumps({"conn_type": "druidflow_deep_storage", "extra": {"uri": str(tmp_path / "deep")}}),
    )
    topic = kafka_broker.create_topic(partitions=3)
    kafka_broker.produce(topic, messages(0, 300), partitions=3)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="af_events", taskCount=3)
    planned = KafkaSupervisorPlanOperator(task_id="plan", spec=spec).execute({"ti": _TI()})
    planned = json.loads(json.dumps(planned))  # through XCom
    assert len(planned) == 3
    reports = [KafkaTaskOperator(task_id="kafka_task", kafka_task=t).execute({"ti": _TI()}) for t in planned]
    assert all(r["published"] for r in reports)
    # The same mapped instance run again (an Airflow retry after its publish): nothing more is published.
    again = KafkaTaskOperator(task_id="kafka_task", kafka_task=planned[0]).execute({"ti": _TI()})
    assert not again["published"] and again["errorType"] == "OffsetsMismatchError"
    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"))
    seen = visible_ids(rt, "af_events")
    assert sum(seen.values()) == 300 and set(seen) == set(range(300))
    assert sum(offsets.committed(rt.store.engine, "af_events").offsets.values()) == 300


def test_continuous_schedule():
    from druidflow.airflow.kafka_dags import supervisor_dag

    dag = supervisor_dag(kafka_spec("127.0.0.1:9", "t"), continuous=True)
    assert dag.max_active_runs == 1 and "continuous" in type(dag.timetable).__name__.lower()
