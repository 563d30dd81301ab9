"""A Kafka supervisor DAG under a real scheduler (LocalExecutor, ORM blocked in tasks), against a real broker:
the spec-folder DAG appears, its runs plan and map one task per task group, and the messages are published once."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from tests.airflow.cluster import druidflow_cluster
from tests.airflow.conftest import DAGS_FOLDER
from tests.streaming.conftest import kafka_broker, kafka_spec  # noqa: F401 (kafka_broker is a fixture)
from tests.streaming.helpers import messages, visible_ids


@pytest.mark.e2e
@pytest.mark.slow
def test_supervisor_dag_publishes_every_message_once(kafka_broker, tmp_path):
    from druidflow.streaming import offsets
    from druidflow.tasks.runtime import Runtime

    topic = kafka_broker.create_topic(partitions=2)
    kafka_broker.produce(topic, messages(0, 400), partitions=2)
    specs = tmp_path / "specs"
    specs.mkdir()
    # A long period: the test triggers the runs itself, so the schedule adds at most one.
    (specs / "af_kafka.json").write_text(json.dumps(kafka_spec(kafka_broker.bootstrap, topic, data_source="af_kafka",
                                                                taskCount=2, period="PT1H")))

    home = tmp_path / "airflow"
    dag_files = {"druidflow_kafka_supervisors.py": (DAGS_FOLDER / "druidflow_kafka_supervisors.py").read_text()}
    with druidflow_cluster(SimpleNamespace(param="sqlite"), home, dag_files, {"DRUIDFLOW_KAFKA_SPEC_DIR": str(specs)}) as cluster:
        cluster.wait_for_dag("druidflow_kafka_af_kafka", timeout=180)
        rt = Runtime.from_urls(cluster.db_url, str(cluster.deep_storage), migrate=False)
        deadline = time.monotonic() + 240
        run_states = []
        while time.monotonic() < deadline:
            stored = offsets.committed(rt.store.engine, "af_kafka")
            if stored is not None and sum(stored.offsets.values()) == 400:
                break
            run_id = cluster.trigger("druidflow_kafka_af_kafka", {})
            run_states.append(cluster.wait_for_run("druidflow_kafka_af_kafka", run_id, timeout=180))
            states = cluster.task_states("druidflow_kafka_af_kafka", run_id)
            assert states["plan"] == ["success"], (states, cluster.task_logs("druidflow_kafka_af_kafka", run_id))
            assert states["kafka_task"] == ["success", "success"], states
        seen = visible_ids(rt, "af_kafka")
        assert sum(seen.values()) == 400 and set(seen) == set(range(400)), run_states
