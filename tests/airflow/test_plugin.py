"""The plugin's /druidflow API, mounted in Airflow's real API app: authentication required, read-only JSON."""

from __future__ import annotations

import time

import pytest

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
    """A migrated metadata DB: two used segments and one unused, a finished task with a report, a running task
    holding one lock."""
    from druidflow.locks import TaskLockbox
    from druidflow.metadata.store import MetadataStore
    from druidflow.segments.descriptor import DataSegment
    from druidflow.segments.shardspec import NumberedShardSpec

    store = MetadataStore(db_url)
    store.migrate()

    def seg(day: str, version: str, partition: int = 0) -> DataSegment:
        return DataSegment(
            data_source="wiki", interval=Interval.parse(f"2024-01-{day}/P1D"), version=version,
            load_spec={"type": "local", "path": f"/deep/wiki/{day}/{version}/{partition}/index.parquet"},
            shard_spec=NumberedShardSpec(partition_num=partition, partitions=0), size=100, num_rows=10,
        )

    store.publish_segments([seg("01", "v1"), seg("02", "v1")])
    old = seg("02", "v0")
    store.publish_segments([old])
    store.mark_unused("wiki", segment_ids=[old.id], reason="dropped-by-user")
    store.insert_task("index_wiki_1", "index", "wiki", "index_wiki_1", {"type": "index"})
    store.set_task_status("index_wiki_1", "SUCCESS", report={"ingestionStatsAndErrors": {"payload": {"ingestionState": "COMPLETED"}}})
    time.sleep(0.002)  # created_date has millisecond resolution: keep "newest first" well defined
    store.insert_task("index_wiki_2", "index", "wiki", "index_wiki_2", {"type": "index"})
    assert TaskLockbox(store.engine).try_lock("index_wiki_2", datasource="wiki", interval="2024-01-03/P1D", priority=50).acquired
    return store.engine


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
    assert [(s["interval"][:10], s["version"], s["used"]) for s in used] == [("2024-01-01", "v1", True), ("2024-01-02", "v1", True)]
    assert used[0]["id"] == "wiki_2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z_v1"
    day2 = client.get("/druidflow/datasources/wiki/segments",
                      params={"interval": "2024-01-02/2024-01-03", "include_unused": "true"}, headers=auth).json()
    assert sorted((s["version"], s["used"]) for s in day2) == [("v0", False), ("v1", True)]
    bad = client.get("/druidflow/datasources/wiki/segments", params={"interval": "yesterday"}, headers=auth)
    assert bad.status_code == 400 and "interval" in bad.json()["detail"]


def test_tasks_list_and_detail_with_report(client, token):
    auth = {"Authorization": f"Bearer {token}"}
    listed = client.get("/druidflow/tasks", headers=auth).json()
    assert [(t["id"], t["status"]) for t in listed] == [("index_wiki_2", "RUNNING"), ("index_wiki_1", "SUCCESS")]
    done = client.get("/druidflow/tasks", params={"active": "false"}, headers=auth).json()
    assert [t["id"] for t in done] == ["index_wiki_1"]
    detail = client.get("/druidflow/tasks/index_wiki_1", headers=auth).json()
    assert detail["report"]["ingestionStatsAndErrors"]["payload"]["ingestionState"] == "COMPLETED"
    assert detail["payload"] == {"type": "index"}
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
