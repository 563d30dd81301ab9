"""Druid's Overlord/Coordinator API at /druid, mounted in Airflow's real API app (in-process, real SQLite): the
read routes, the Coordinator's writes, locked intervals, Druid's error shape, and authentication/authorisation.
Submitting and shutting down tasks needs a scheduler: tests/airflow/test_druid_api_e2e.py."""

from __future__ import annotations

import base64
import time

import pytest

from druidflow.intervals import Interval


@pytest.fixture(scope="module")
def airflow_app(airflow_db):
    from airflow.api_fastapi.app import create_app

    return create_app()


def _token(role: str, name: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=name, role=role))


@pytest.fixture(scope="module")
def admin(airflow_app) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token('admin', 'admin')}"}


@pytest.fixture(scope="module")
def viewer(airflow_app) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token('viewer', 'viewer')}"}


@pytest.fixture(scope="module")
def basic_admin(airflow_app) -> dict[str, str]:
    """HTTP Basic with the real admin user's password (SimpleAuthManager's generated password file)."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    password = SimpleAuthManager.get_passwords()["admin"]
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


@pytest.fixture
def seeded(db_url):
    """Two used segments and one unused of 'wiki', a finished task with a report, a running task holding a lock."""
    from druidflow.locks import TaskLockbox
    from druidflow.metadata.store import MetadataStore
    from druidflow.segments.descriptor import DataSegment
    from druidflow.segments.shardspec import NumberedShardSpec

    store = MetadataStore(db_url)
    store.migrate()

    def seg(day: str, version: str) -> DataSegment:
        return DataSegment(
            data_source="wiki", interval=Interval.parse(f"2024-01-{day}/P1D"), version=version,
            load_spec={"type": "local", "path": f"/deep/wiki/{day}/{version}/0/index.parquet"},
            shard_spec=NumberedShardSpec(partition_num=0, partitions=0), size=100, num_rows=10,
        )

    store.publish_segments([seg("01", "v1"), seg("02", "v1")])
    old = seg("03", "v0")
    store.publish_segments([old])
    store.mark_unused("wiki", segment_ids=[old.id], reason="dropped-by-user")
    report = {"ingestionStatsAndErrors": {"taskId": "index_wiki_1", "payload": {"ingestionState": "COMPLETED"}}}
    store.insert_task("index_wiki_1", "index", "wiki", "index_wiki_1", {"type": "index", "id": "index_wiki_1"})
    store.set_task_status("index_wiki_1", "SUCCESS", report=report)
    time.sleep(0.002)
    store.insert_task("index_wiki_2", "index", "wiki", "index_wiki_2", {"type": "index", "id": "index_wiki_2"})
    assert TaskLockbox(store.engine).try_lock("index_wiki_2", datasource="wiki", interval="2024-01-05/P1D", priority=50).acquired
    time.sleep(0.002)
    store.insert_task("index_wiki_3", "index", "wiki", "index_wiki_3", {"type": "index", "id": "index_wiki_3"})
    return store


@pytest.fixture
def client(airflow_app, seeded):
    from fastapi.testclient import TestClient

    from druidflow.airflow.druid_api.deps import get_engine
    from druidflow.airflow.plugin import DruidflowPlugin

    apps = [a["app"] for a in DruidflowPlugin.fastapi_apps if a["url_prefix"] == "/druid"]
    assert len(apps) == 1, "the Druid API is mounted at /druid"
    apps[0].dependency_overrides[get_engine] = lambda: seeded.engine
    yield TestClient(airflow_app)
    apps[0].dependency_overrides.clear()


ROUTES = [
    ("POST", "/druid/indexer/v1/task"),
    ("GET", "/druid/indexer/v1/task/index_wiki_1"),
    ("GET", "/druid/indexer/v1/task/index_wiki_1/status"),
    ("GET", "/druid/indexer/v1/task/index_wiki_1/reports"),
    ("GET", "/druid/indexer/v1/task/index_wiki_1/segments"),
    ("POST", "/druid/indexer/v1/task/index_wiki_2/shutdown"),
    ("POST", "/druid/indexer/v1/datasources/wiki/shutdownAllTasks"),
    ("GET", "/druid/indexer/v1/tasks"),
    ("POST", "/druid/indexer/v1/lockedIntervals"),
    ("GET", "/druid/coordinator/v1/datasources"),
    ("GET", "/druid/coordinator/v1/datasources/wiki"),
    ("GET", "/druid/coordinator/v1/datasources/wiki/segments"),
    ("DELETE", "/druid/coordinator/v1/datasources/wiki/intervals/2024-01-01_2024-01-02"),
    ("POST", "/druid/coordinator/v1/datasources/wiki/markUnused"),
    ("POST", "/druid/coordinator/v1/datasources/wiki/markUsed"),
    ("GET", "/druid/coordinator/v1/rules/wiki"),
    ("POST", "/druid/coordinator/v1/rules/wiki"),
    ("GET", "/druid/openapi.json"),
    ("GET", "/druid/docs"),
]


def test_every_route_and_the_docs_need_an_authenticated_user(client, seeded):
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:not-the-password").decode()}
    for method, path in ROUTES:
        r = client.request(method, path)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["category"] == "UNAUTHORIZED"
        assert "Basic" in r.headers["WWW-Authenticate"]  # so curl -u / Druid's basic-security clients answer it
        assert client.request(method, path, headers=wrong).status_code == 401, path
        assert client.request(method, path, headers={"Authorization": "Bearer not-a-token"}).status_code in (401, 403)
    assert client.get("/druid/indexer/v1/tasks", headers=wrong).json()["errorMessage"] == "invalid username or password"
    assert len(seeded.used_segments("wiki")) == 2 and seeded.get_task("index_wiki_2").status == "RUNNING"


def test_the_plugins_other_api_hides_its_docs_from_anonymous_users_too(client, admin):
    for path in ("/druidflow/docs", "/druidflow/openapi.json"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=admin).status_code == 200


def test_basic_auth_with_an_airflow_users_password_is_accepted(client, basic_admin):
    r = client.get("/druid/indexer/v1/task/index_wiki_1/status", headers=basic_admin)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["status"] == "SUCCESS"
    assert client.get("/druid/openapi.json", headers=basic_admin).json()["paths"]["/indexer/v1/task"]
    assert "swagger" in client.get("/druid/docs", headers=basic_admin).text.lower()


def test_a_viewer_may_read_but_not_submit_shut_down_or_change_segments(client, viewer, seeded):
    assert client.get("/druid/indexer/v1/tasks", headers=viewer).status_code == 200
    assert client.get("/druid/coordinator/v1/datasources", headers=viewer).json() == ["wiki"]
    spec = {"type": "kill", "dataSource": "wiki", "interval": "2024-01-03/2024-01-04"}
    writes = [
        ("POST", "/druid/indexer/v1/task", spec),
        ("POST", "/druid/indexer/v1/task/index_wiki_2/shutdown", None),
        ("POST", "/druid/indexer/v1/datasources/wiki/shutdownAllTasks", None),
        ("DELETE", "/druid/coordinator/v1/datasources/wiki/intervals/2024-01-01_2024-01-03", None),
        ("POST", "/druid/coordinator/v1/datasources/wiki/markUnused", {"interval": "2024-01-01/2024-01-03"}),
        ("POST", "/druid/coordinator/v1/rules/wiki", [{"type": "dropForever"}]),
    ]
    for method, path, body in writes:
        r = client.request(method, path, headers=viewer, json=body)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["category"] == "FORBIDDEN" and "viewer" in r.json()["errorMessage"]
    assert len(seeded.used_segments("wiki")) == 2
    assert seeded.get_task("index_wiki_2").status == "RUNNING"
    assert seeded.get_rules("wiki") == []


def test_task_payload_status_and_reports(client, admin):
    r = client.get("/druid/indexer/v1/task/index_wiki_1", headers=admin)
    assert r.json() == {"task": "index_wiki_1", "payload": {"type": "index", "id": "index_wiki_1"}}
    status = client.get("/druid/indexer/v1/task/index_wiki_1/status", headers=admin).json()
    assert status["task"] == "index_wiki_1"
    assert {k: status["status"][k] for k in ("id", "status", "statusCode", "runnerStatusCode", "dataSource", "type")} == {
        "id": "index_wiki_1", "status": "SUCCESS", "statusCode": "SUCCESS", "runnerStatusCode": "NONE",
        "dataSource": "wiki", "type": "index",
    }
    assert status["status"]["duration"] >= 0 and status["status"]["errorMsg"] is None
    assert status["status"]["location"] == {"host": None, "port": -1, "tlsPort": -1}
    running = client.get("/druid/indexer/v1/task/index_wiki_2/status", headers=admin).json()["status"]
    assert (running["status"], running["runnerStatusCode"], running["duration"]) == ("RUNNING", "RUNNING", -1)
    waiting = client.get("/druid/indexer/v1/task/index_wiki_3/status", headers=admin).json()["status"]
    assert (waiting["status"], waiting["runnerStatusCode"]) == ("RUNNING", "WAITING")  # no lock yet
    reports = client.get("/druid/indexer/v1/task/index_wiki_1/reports", headers=admin).json()
    assert reports["ingestionStatsAndErrors"]["payload"]["ingestionState"] == "COMPLETED"
    assert client.get("/druid/indexer/v1/task/index_wiki_1/segments", headers=admin).json() == []


@pytest.mark.parametrize("suffix", ["", "/status", "/reports", "/segments"])
def test_unknown_task_is_404_in_druids_shape(client, admin, suffix):
    r = client.get(f"/druid/indexer/v1/task/no_such_task{suffix}", headers=admin)
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "druidException" and body["category"] == "NOT_FOUND"
    assert "no_such_task" in body["errorMessage"] and body["context"]["field"] == "taskId"


def test_task_list_filters_by_state_datasource_type_and_max(client, admin):
    def ids(**params):
        r = client.get("/druid/indexer/v1/tasks", headers=admin, params=params)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()]

    assert ids() == ["index_wiki_3", "index_wiki_2", "index_wiki_1"]
    assert ids(state="running") == ["index_wiki_2"]
    assert ids(state="waiting") == ["index_wiki_3"]
    assert ids(state="complete") == ["index_wiki_1"]
    assert ids(state="pending") == []
    assert ids(state="complete", max=0) == []
    assert ids(datasource="other") == []
    assert ids(type="kill") == []
    assert ids(createdTimeInterval="2000-01-01_2001-01-01") == []
    assert ids(createdTimeInterval="2000-01-01_2200-01-01") == ["index_wiki_3", "index_wiki_2", "index_wiki_1"]
    listed = client.get("/druid/indexer/v1/tasks", headers=admin).json()[2]
    assert set(listed) >= {"id", "groupId", "type", "createdTime", "queueInsertionTime", "statusCode", "status",
                           "runnerStatusCode", "duration", "location", "dataSource", "errorMsg"}
    for state in ("running", "waiting", "complete", "pending"):  # Druid's older per-state lists
        assert [t["id"] for t in client.get(f"/druid/indexer/v1/{state}Tasks", headers=admin).json()] == ids(state=state)
    r = client.get("/druid/indexer/v1/tasks", headers=admin, params={"state": "finished"})
    assert r.status_code == 400 and r.json()["context"]["field"] == "state"


def test_locked_intervals_by_minimum_priority(client, admin):
    r = client.post("/druid/indexer/v1/lockedIntervals", headers=admin, json={"wiki": 0, "other": 0})
    assert r.json() == {"wiki": ["2024-01-05T00:00:00.000Z/2024-01-06T00:00:00.000Z"]}
    assert client.post("/druid/indexer/v1/lockedIntervals", headers=admin, json={"wiki": 75}).json() == {}
    bad = client.post("/druid/indexer/v1/lockedIntervals", headers=admin, json={"wiki": "high"})
    assert bad.status_code == 400 and bad.json()["context"] == {"field": "wiki", "value": "high"}


def test_submit_refuses_bad_input_naming_the_field(client, admin):
    r = client.post("/druid/indexer/v1/task", headers=admin, json={"type": "hadoop", "spec": {}})
    assert r.status_code == 400 and r.json()["context"]["field"] == "type"
    from druidflow.airflow.druid_api.overlord import MAX_TASK_BYTES

    r = client.post("/druid/indexer/v1/task", headers=admin, content=b" " * (MAX_TASK_BYTES + 1))
    assert r.status_code == 413 and r.json()["context"]["field"] == "body"
    r = client.post("/druid/indexer/v1/task", headers=admin, content=b"{not json")
    assert r.status_code == 400 and r.json()["context"]["field"] == "body"
    spec = {"type": "index", "spec": {"dataSchema": {"dataSource": "wiki", "timestampSpec": {"column": "ts"}, "dimensionsSpec": {"dimensions": []},
                                                     "granularitySpec": {"segmentGranularity": "FORTNIGHT"}},
                                      "ioConfig": {"type": "index", "inputSource": {"type": "inline", "data": "{}"},
                                                   "inputFormat": {"type": "json"}}}}
    r = client.post("/druid/indexer/v1/task", headers=admin, json=spec)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["category"] == "INVALID_INPUT" and body["context"]["field"].endswith("segmentGranularity")
    assert "FORTNIGHT" in body["errorMessage"]
    # A duplicate of a recorded task id is refused as Druid does, before any run is started.
    r = client.post("/druid/indexer/v1/task", headers=admin,
                    json={"type": "kill", "id": "index_wiki_1", "dataSource": "wiki", "interval": "2024-01-03/2024-01-04"})
    assert r.status_code == 400 and r.json()["errorMessage"] == "Task [index_wiki_1] already exists"
    assert r.json()["context"]["field"] == "id"


def test_coordinator_datasources_and_segments(client, admin, seeded):
    get = lambda path, **kw: client.get(f"/druid/coordinator/v1{path}", headers=admin, **kw)  # noqa: E731
    assert get("/datasources").json() == ["wiki"]
    simple = get("/datasources", params={"simple": ""}).json()
    assert simple == [{"name": "wiki", "properties": {"tiers": {}, "segments": {
        "minTime": "2024-01-01T00:00:00.000Z", "maxTime": "2024-01-03T00:00:00.000Z", "size": 200, "count": 2}}}]
    assert get("/datasources/wiki").json()["segments"]["count"] == 2
    ids = get("/datasources/wiki/segments").json()
    assert ids == [s.id for s in seeded.used_segments("wiki")]
    full = get("/datasources/wiki/segments", params={"full": ""}).json()
    assert [s["identifier"] for s in full] == ids and full[0]["dataSource"] == "wiki"
    assert get(f"/datasources/wiki/segments/{ids[0]}").json()["identifier"] == ids[0]
    days = ["2024-01-02T00:00:00.000Z/2024-01-03T00:00:00.000Z", "2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z"]
    assert get("/datasources/wiki/intervals").json() == days  # newest first
    assert get("/datasources/wiki/intervals", params={"simple": ""}).json() == {d: {"size": 100, "count": 1} for d in days}
    full = get("/datasources/wiki/intervals", params={"full": ""}).json()
    assert list(full[days[0]]) == [ids[1]] and full[days[0]][ids[1]]["metadata"]["identifier"] == ids[1]
    for path in ("/datasources/nope", "/datasources/nope/segments", "/datasources/wiki/segments/nope"):
        r = get(path)
        assert r.status_code == 404 and r.json()["category"] == "NOT_FOUND", path


def test_coordinator_marks_unused_and_used(client, admin, seeded):
    base = "/druid/coordinator/v1/datasources/wiki"
    r = client.delete(f"{base}/intervals/2024-01-01_2024-01-02", headers=admin)
    assert r.json() == {"numChangedSegments": 1}
    assert [str(s.interval)[:10] for s in seeded.used_segments("wiki")] == ["2024-01-02"]
    day2 = seeded.used_segments("wiki")[0].id
    r = client.post(f"{base}/markUnused", headers=admin, json={"segmentIds": [day2]})
    assert r.json() == {"numChangedSegments": 1} and seeded.used_segments("wiki") == []
    r = client.post(f"{base}/markUsed", headers=admin, json={"interval": "2024-01-01/2024-01-04"})
    assert r.json() == {"numChangedSegments": 3} and len(seeded.used_segments("wiki")) == 3
    r = client.post(f"{base}/markUnused", headers=admin, json={"interval": "2024-01-01/2024-01-02", "segmentIds": [day2]})
    assert r.status_code == 400 and r.json()["context"]["field"] == "interval"
    r = client.post(f"{base}/markUnused", headers=admin, json={"interval": "2024-13-01/2024-01-02"})
    assert r.status_code == 400 and r.json()["context"]["field"] == "interval"
    r = client.post("/druid/coordinator/v1/datasources/nope/markUnused", headers=admin, json={"interval": "2024-01-01/P1D"})
    assert r.status_code == 404


def test_coordinator_retention_rules(client, admin, seeded):
    url = "/druid/coordinator/v1/rules/wiki"
    assert client.get(url, headers=admin).json() == []
    rules = [{"type": "loadByPeriod", "period": "P1M"}, {"type": "dropForever"}]
    assert client.post(url, headers=admin, json=rules).status_code == 200
    assert client.get(url, headers=admin).json() == rules and seeded.get_rules("wiki") == rules
    assert client.get(url, headers=admin, params={"full": ""}).json()[-1]["type"] == "loadForever"
    assert client.get("/druid/coordinator/v1/rules", headers=admin).json()["wiki"] == rules
    r = client.post(url, headers=admin, json=[{"type": "dropSometimes"}])
    assert r.status_code == 400 and r.json()["context"]["field"] == "rules[0].type"
    assert seeded.get_rules("wiki") == rules  # a refused change changes nothing


def test_shutdown_of_a_task_without_a_run_releases_its_locks_and_records_it_failed(client, admin, seeded):
    from druidflow.locks import TaskLockbox

    r = client.post("/druid/indexer/v1/task/index_wiki_2/shutdown", headers=admin)
    assert r.status_code == 200 and r.json() == {"task": "index_wiki_2"}
    record = seeded.get_task("index_wiki_2")
    assert (record.status, record.error_msg) == ("FAILED", "Shutdown request from user")
    assert [lk for lk in TaskLockbox(seeded.engine).locks(task_id="index_wiki_2") if lk.active] == []
    # Shutting down a complete task changes nothing, as in Druid.
    assert client.post("/druid/indexer/v1/task/index_wiki_1/shutdown", headers=admin).status_code == 200
    assert seeded.get_task("index_wiki_1").status == "SUCCESS"
    assert client.post("/druid/indexer/v1/task/no_such_task/shutdown", headers=admin).status_code == 404
    r = client.post("/druid/indexer/v1/datasources/wiki/shutdownAllTasks", headers=admin)
    assert r.json() == {"dataSource": "wiki"}
    assert seeded.get_task("index_wiki_3").status == "FAILED"
    assert client.get("/druid/indexer/v1/tasks", headers=admin, params={"state": "running"}).json() == []


def test_a_kill_tasks_reports_are_druids_kill_task_report(client, admin, seeded, db_url, tmp_path):
    # Druid's KillTaskReport (apache/druid processing/src/main/java/org/apache/druid/indexer/report/KillTaskReport.java):
    # {"killUnusedSegments": {"type": "killUnusedSegments", "taskId", "payload": {"numSegmentsKilled", ...}}}
    from druidflow.tasks import kill
    from druidflow.tasks.runtime import Runtime

    rt = Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")
    spec = {"type": "kill", "id": "kill_wiki_1", "dataSource": "wiki", "interval": "2024-01-03/2024-01-04"}
    kill.run(spec, rt, dry_run=False)
    reports = client.get("/druid/indexer/v1/task/kill_wiki_1/reports", headers=admin).json()
    entry = reports["killUnusedSegments"]
    assert (entry["type"], entry["taskId"]) == ("killUnusedSegments", "kill_wiki_1")
    assert entry["payload"] == {"numSegmentsKilled": 1, "numBatchesProcessed": 1, "numSegmentsMarkedAsUnused": 0}
    assert set(entry) == {"type", "taskId", "payload", "druidflowDetails"}
    (killed,) = entry["druidflowDetails"]["segments"]
    assert killed.startswith("wiki_2024-01-03")
