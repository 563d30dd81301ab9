"""Druid's supervisor API at /druid/indexer/v1/supervisor over a real SQLite database and a real broker."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from druidflow.metadata.engine import make_engine
from druidflow.metadata.store import MetadataStore
from tests.streaming.conftest import kafka_broker, kafka_spec  # noqa: F401 (kafka_broker is a fixture)
from tests.streaming.helpers import messages


@pytest.fixture
def client(sqlite_url):
    from druidflow.airflow import kafka_api
    from druidflow.airflow.druid_api.deps import get_engine

    MetadataStore(sqlite_url).migrate()
    app = FastAPI()
    app.include_router(kafka_api.router, prefix="/druid")
    app.dependency_overrides[get_engine] = lambda: make_engine(sqlite_url)
    return TestClient(app)


def test_post_list_get_suspend_resume_status_reset_terminate(client, kafka_broker, sqlite_url, tmp_path):
    from druidflow.streaming import offsets, supervisor
    from druidflow.tasks.runtime import Runtime

    topic = kafka_broker.create_topic(partitions=2)
    kafka_broker.produce(topic, messages(0, 100), partitions=2)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="api_events")
    base = "/druid/indexer/v1/supervisor"
    assert client.post(base, json=spec).json() == {"id": "api_events"}
    assert client.get(base).json() == ["api_events"]
    assert client.get(f"{base}/api_events").json()["spec"]["ioConfig"]["topic"] == topic

    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"))
    supervisor.supervise(spec, rt, until_caught_up=True, max_cycles=5)
    status = client.get(f"{base}/api_events/status").json()
    assert status["id"] == "api_events" and status["payload"]["state"] == "RUNNING"
    assert {p: v["committedOffset"] for p, v in status["payload"]["partitions"].items()} == {"0": 50, "1": 50}

    assert client.post(f"{base}/api_events/suspend").json()["suspended"] is True
    assert client.get(f"{base}/api_events/status").json()["payload"]["state"] == "SUSPENDED"
    assert client.post(f"{base}/api_events/resume").json()["suspended"] is False
    assert client.post(f"{base}/api_events/reset").json() == {"id": "api_events"}
    assert offsets.committed(rt.store.engine, "api_events") is None
    assert client.post(f"{base}/api_events/terminate").json() == {"id": "api_events"}
    assert client.get(base).json() == []
    assert supervisor.stored_specs(rt.store.engine) == []


def test_errors_name_the_field_or_the_missing_supervisor(client):
    base = "/druid/indexer/v1/supervisor"
    bad = kafka_spec("127.0.0.1:9", "t")
    bad["spec"]["ioConfig"]["taskCount"] = 0
    r = client.post(base, json=bad)
    assert r.status_code == 400 and "spec.ioConfig.taskCount" in json.dumps(r.json())
    assert client.get(f"{base}/nope").status_code == 404
    assert client.post(f"{base}/nope/suspend").status_code == 404


def test_stored_supervisors_become_dags(sqlite_url, monkeypatch, tmp_path):
    from druidflow.airflow.kafka_dags import configured_specs
    from druidflow.streaming import supervisor
    from druidflow.streaming.kafka_spec import parse_supervisor_spec
    from druidflow.tasks.runtime import Runtime

    monkeypatch.setenv("AIRFLOW_CONN_DRUIDFLOW_METADATA", sqlite_url)
    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), work_dir=tmp_path / "work")
    supervisor.save(rt, parse_supervisor_spec(kafka_spec("127.0.0.1:9", "t", data_source="from_api")))
    assert [parse_supervisor_spec(s).id for s in configured_specs()] == ["from_api"]


def test_mounted_in_the_airflow_api_server_behind_its_authentication(airflow_db, sqlite_url):
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from druidflow.airflow.druid_api.deps import get_engine
    from druidflow.airflow.plugin import DruidflowPlugin

    MetadataStore(sqlite_url).migrate()
    app = create_app()
    (druid,) = [a["app"] for a in DruidflowPlugin.fastapi_apps if a["url_prefix"] == "/druid"]
    druid.dependency_overrides[get_engine] = lambda: make_engine(sqlite_url)
    try:
        client = TestClient(app)
        base = "/druid/indexer/v1/supervisor"
        assert client.get(base).status_code in (401, 403)
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
        headers = {"Authorization": f"Bearer {token}"}
        assert client.post(base, json=kafka_spec("127.0.0.1:9", "t", data_source="mounted"), headers=headers).json() == {"id": "mounted"}
        assert client.get(base, headers=headers).json() == ["mounted"]
        assert client.get(f"{base}/missing", headers=headers).status_code == 404
    finally:
        druid.dependency_overrides.clear()
