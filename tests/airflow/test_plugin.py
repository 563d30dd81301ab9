"""The plugin's /druidflow API, mounted in Airflow's real API app: authentication required, read-only JSON."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from druidflow.intervals import Interval


@pytest.fixture(scope="module")
def airflow_app(airflow_db):
    from airflow.api_fastapi.app import create_app

    return create_app()


@pytest.fixture(scope="module")
def token(airflow_app) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))


@pytest.fixture
def seeded(db_url):
    """A metadata DB with two used segments and one unused, two tasks (one with a report) and one lock."""
    from druidflow.locks import TaskLockbox
    from druidflow.metadata.engine import make_engine
    from druidflow.metadata.tables import metadata, segments, tasks

    engine = make_engine(db_url)
    metadata.create_all(engine)
    rows = []
    for day, used, partition in (("01", True, 0), ("02", True, 0), ("02", False, 1)):
        iv = Interval.parse(f"2024-01-{day}/P1D")
        seg_id = f"wiki_{iv.start}_{iv.end}_v1" + (f"_{partition}" if partition else "")
        payload = {"dataSource": "wiki", "interval": str(iv), "version": "v1", "identifier": seg_id, "numRows": 10}
        rows.append(dict(
            id=seg_id, dataSource="wiki", created_date="2024-02-01T00:00:00.000Z", start=str(iv).split("/")[0],
            end=str(iv).split("/")[1], start_ms=iv.start, end_ms=iv.end, partitioned=False, version="v1",
            partition_num=partition, used=used, used_status_last_updated="2024-02-01T00:00:00.000Z",
            size=100, num_rows=10, load_path=f"/deep/{seg_id}", payload=json.dumps(payload).encode(),
        ))
    task_rows = [
        dict(id="index_wiki_1", type="index", dataSource="wiki", group_id="index_wiki_1", status="SUCCESS",
             active=False, payload=json.dumps({"type": "index"}), status_payload=json.dumps({"status": "SUCCESS"}),
             report=json.dumps({"ingestionStatsAndErrors": {"payload": {"ingestionState": "COMPLETED"}}}),
             error_msg=None, created_date="2024-02-01T00:00:00.000Z", updated_date="2024-02-01T00:01:00.000Z"),
        dict(id="index_wiki_2", type="index", dataSource="wiki", group_id="index_wiki_2", status="RUNNING",
             active=True, payload=json.dumps({"type": "index"}), status_payload=None, report=None, error_msg=None,
             created_date="2024-02-02T00:00:00.000Z", updated_date="2024-02-02T00:00:00.000Z"),
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(segments), rows)
        conn.execute(sa.insert(tasks), task_rows)
    assert TaskLockbox(engine).try_lock("index_wiki_2", datasource="wiki", interval="2024-01-03/P1D", priority=50).acquired
    return engine


@pytest.fixture
def client(airflow_app, seeded):
    from fastapi.testclient import TestClient

    from druidflow.airflow.plugin import DruidflowPlugin, get_engine

    sub_app = DruidflowPlugin.fastapi_apps[0]["app"]
    sub_app.dependency_overrides[get_engine] = lambda: seeded
    yield TestClient(airflow_app)
    sub_app.dependency_overrides.clear()


@pytest.mark.parametrize("path", ["/druidflow/datasources", "/druidflow/tasks", "/druidflow/locks", "/druidflow/ui",
                                  "/druidflow/tasks/index_wiki_1", "/druidflow/datasources/wiki/segments"])
def test_every_route_needs_an_authenticated_user(client, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer not-a-token"}).status_code in (401, 403)


def test_datasources_summarise_used_segments(client, token):
    r = client.get("/druidflow/datasources", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json() == [{
        "dataSource": "wiki", "segments": 2, "rows": 20, "size": 200,
        "interval": "2024-01-01T00:00:00.000Z/2024-01-03T00:00:00.000Z",
    }]


def test_segments_filter_by_interval_and_usedness(client, token):
    auth = {"Authorization": f"Bearer {token}"}
    used = client.get("/druidflow/datasources/wiki/segments", headers=auth).json()
    assert [s["interval"][:10] for s in used] == ["2024-01-01", "2024-01-02"]
    assert all(s["used"] for s in used)
    day2 = client.get("/druidflow/datasources/wiki/segments",
                      params={"interval": "2024-01-02/2024-01-03", "include_unused": "true"}, headers=auth).json()
    assert sorted(s["used"] for s in day2) == [False, True]
    bad = client.get("/druidflow/datasources/wiki/segments", params={"interval": "yesterday"}, headers=auth)
    assert bad.status_code == 400 and "interval" in bad.json()["detail"]


def test_tasks_list_and_detail_with_report(client, token):
    auth = {"Authorization": f"Bearer {token}"}
    listed = client.get("/druidflow/tasks", headers=auth).json()
    assert [t["id"] for t in listed] == ["index_wiki_2", "index_wiki_1"]  # newest first
    assert [t["id"] for t in client.get("/druidflow/tasks", params={"status": "success"}, headers=auth).json()] == [
        "index_wiki_1"
    ]
    detail = client.get("/druidflow/tasks/index_wiki_1", headers=auth).json()
    assert detail["report"]["ingestionStatsAndErrors"]["payload"]["ingestionState"] == "COMPLETED"
    assert detail["spec"] == {"type": "index"}
    assert client.get("/druidflow/tasks/nope", headers=auth).status_code == 404


def test_locks_and_status_page(client, token):
    auth = {"Authorization": f"Bearer {token}"}
    locks = client.get("/druidflow/locks", headers=auth).json()
    assert [(lk["taskId"], lk["interval"][:10], lk["state"]) for lk in locks] == [("index_wiki_2", "2024-01-03", "active")]
    assert client.get("/druidflow/locks", params={"dataSource": "other"}, headers=auth).json() == []
    page = client.get("/druidflow/ui", headers=auth)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "index_wiki_2" in page.text and "wiki" in page.text


def test_plugin_declares_a_nav_entry():
    from druidflow.airflow.plugin import DruidflowPlugin

    view = DruidflowPlugin.external_views[0]
    assert view["href"] == "/druidflow/ui" and view["destination"] == "nav" and view["url_route"]
