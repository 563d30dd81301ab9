"""docker-compose.yaml and Dockerfile, checked by reading them (there is no Docker engine in CI)."""

from __future__ import annotations

import json
import re

import yaml

from tests.airflow.conftest import REPO

AIRFLOW_SERVICES = {
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker", "airflow-triggerer",
    "airflow-init",
}


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_compose_has_the_official_airflow3_shape():
    services = _compose()["services"]
    assert {"postgres", "redis"} | AIRFLOW_SERVICES <= set(services)
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["airflow-worker"]["deploy"]["replicas"] == 2  # the two workers test_parallel_celery.py runs
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    for name in AIRFLOW_SERVICES:
        assert services[name]["build"] == ".", name
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert int(env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"]) > 0


def test_compose_wires_druidflow_connections_and_shared_deep_storage():
    compose = _compose()
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        # The metadata Connection is the Airflow DB itself, where the DB manager creates the tables.
        assert env["AIRFLOW_CONN_DRUIDFLOW_METADATA"] == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        deep = json.loads(env["AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE"])
        assert deep["conn_type"] == "druidflow_deep_storage"
        mounts = dict(reversed(re.fullmatch(r"(.+):(/[^:]+)(?::ro|:rw)?", v).groups()) for v in services[name]["volumes"])
        assert mounts[deep["extra"]["uri"]] == "druidflow-deep-storage", name
        assert mounts["/opt/airflow/dags"].endswith("/dags")
    assert "druidflow-deep-storage" in compose["volumes"]


def test_the_metadata_connection_resolves_to_the_airflow_db_url():
    from airflow.sdk import Connection

    from druidflow.airflow.hooks import sqlalchemy_url_from_connection

    env = _compose()["services"]["airflow-worker"]["environment"]
    conn = Connection.from_uri(env["AIRFLOW_CONN_DRUIDFLOW_METADATA"], conn_id="druidflow_metadata")
    assert sqlalchemy_url_from_connection(conn) == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_dockerfile_installs_this_repository_on_airflow_3_3_2():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.2$", text, re.M)
    for src in re.findall(r"^COPY --chown=\S+ (.+) /opt/druidflow/", text, re.M):
        for path in src.split():
            assert (REPO / path).exists(), path
    assert 'pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/druidflow' in text


def test_compose_runs_the_short_task_settings_the_tests_and_the_bench_run():
    from tests.airflow.cluster import CELERY_SETTINGS, SHORT_TASK_SETTINGS

    for name in AIRFLOW_SERVICES:
        env = _compose()["services"][name]["environment"]
        for key, value in {**SHORT_TASK_SETTINGS, **CELERY_SETTINGS}.items():
            assert env.get(key) == value, (name, key)
