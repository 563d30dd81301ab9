"""The push endpoints inside Airflow's own API app, in-process: mounted at Druid's paths, authentication required."""

from __future__ import annotations

import json
import time

import pytest

from tests.push.helpers import events, ndjson, realtime_spec


@pytest.fixture(scope="module")
def airflow_app(airflow_db, tmp_path_factory):
    import os

    specs = tmp_path_factory.mktemp("push-specs")
    (specs / "inproc.json").write_text(json.dumps(realtime_spec("inproc")))
    os.environ["DRUIDFLOW_PUSH_SPECS"] = str(specs)
    from airflow.api_fastapi.app import create_app

    yield create_app()
    os.environ.pop("DRUIDFLOW_PUSH_SPECS", None)


@pytest.fixture
def client(airflow_app, sqlite_url):
    from fastapi.testclient import TestClient

    from druidflow.airflow import push_api
    from druidflow.airflow.plugin import DruidflowPlugin, get_engine
    from druidflow.metadata.engine import make_engine
    from druidflow.metadata.store import MetadataStore

    engine = make_engine(sqlite_url)
    MetadataStore(engine).migrate()
    main_app = DruidflowPlugin.fastapi_apps[0]["app"]
    main_app.dependency_overrides[get_engine] = lambda: engine
    service = push_api.default_service()
    real_engine, service.engine = service.engine, lambda: engine
    yield TestClient(airflow_app)
    service.engine = real_engine
    main_app.dependency_overrides.clear()


@pytest.fixture
def token(airflow_app) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))


@pytest.mark.parametrize("path", ["/v1/post/inproc", "/druid/worker/v1/chat/inproc/push-events"])
def test_push_paths_need_an_authenticated_user(client, path):
    assert client.post(path, json=[]).status_code == 401
    assert client.get("/druidflow/push").status_code == 401


def test_push_through_airflows_app_and_see_it_pending(client, token):
    auth = {"Authorization": f"Bearer {token}"}
    body = ndjson(events(int(time.time() * 1000), range(4)))
    r = client.post("/v1/post/inproc", content=body, headers=auth)
    assert r.status_code == 200 and r.json() == {"result": {"received": 4, "sent": 4}}
    r = client.post("/druid/worker/v1/chat/inproc/push-events", content=body, headers=auth)
    assert r.json() == {"eventCount": 4, "sent": 4}
    status = client.get("/druidflow/push", headers=auth).json()
    [row] = [d for d in status["dataSources"] if d["dataSource"] == "inproc"]
    assert (row["pendingEvents"], row["configured"], row["serviceName"]) == (8, True, "inproc")
