"""Druid clients against the Druid API of a real Airflow API server with a real scheduler (LocalExecutor):
the Airflow Druid provider's own DruidOperator submits Druid's tutorial spec over HTTP Basic and succeeds; a task
submitted over plain HTTP keeps its id, refuses a duplicate, and is shut down mid-build with nothing published
and its locks released; 401/403 come from the real server."""

from __future__ import annotations

import gzip
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.airflow.cluster import AirflowCluster, druidflow_cluster
from tests.airflow.conftest import DAGS_FOLDER

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIENT_DAG = textwrap.dedent(
    '''
    """Druid's own Airflow client: the provider's DruidOperator, pointed at Druidflow through a Connection."""
    import json
    import os
    from datetime import datetime

    from airflow.providers.apache.druid.operators.druid import DruidOperator
    from airflow.sdk import DAG

    with DAG("druid_client", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
        DruidOperator(
            task_id="ingest",
            json_index_file=os.environ["DRUID_TUTORIAL_SPEC"],
            druid_ingest_conn_id="druidflow_overlord",
            timeout=1,
            max_ingestion_time=600,
        )
    '''
)


def tutorial_spec(base_dir: Path, data_source: str) -> dict:
    """Druid's "Loading a file" tutorial task, as the tutorial gives it (baseDir made absolute)."""
    dims = ["channel", "cityName", "comment", "countryIsoCode", "countryName", "isAnonymous", "isMinor", "isNew",
            "isRobot", "isUnpatrolled", "metroCode", "namespace", "page", "regionIsoCode", "regionName", "user",
            {"name": "added", "type": "long"}, {"name": "deleted", "type": "long"}, {"name": "delta", "type": "long"}]
    return {
        "type": "index_parallel",
        "spec": {
            "dataSchema": {
                "dataSource": data_source,
                "timestampSpec": {"column": "time", "format": "iso"},
                "dimensionsSpec": {"dimensions": dims},
                "metricsSpec": [],
                "granularitySpec": {"type": "uniform", "segmentGranularity": "day", "queryGranularity": "none",
                                    "intervals": ["2015-09-12/2015-09-13"], "rollup": False},
            },
            "ioConfig": {
                "type": "index_parallel",
                "inputSource": {"type": "local", "baseDir": str(base_dir), "filter": "wikiticker-2015-09-12-sampled.json.gz"},
                "inputFormat": {"type": "json"},
                "appendToExisting": False,
            },
            "tuningConfig": {"type": "index_parallel", "partitionsSpec": {"type": "dynamic"}, "maxRowsInMemory": 25000},
        },
    }


TUTORIAL_ROWS = 500


def write_wikiticker(directory: Path) -> Path:
    """A small stand-in for the tutorial's wikiticker-2015-09-12-sampled.json.gz, in its columns."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "wikiticker-2015-09-12-sampled.json.gz"
    lines = [
        json.dumps({"time": f"2015-09-12T{i % 24:02d}:{i % 60:02d}:00.000Z", "channel": f"#{'en' if i % 3 else 'fr'}.wikipedia",
                    "page": f"Page {i % 37}", "user": f"user{i % 11}", "namespace": "Main", "isRobot": i % 5 == 0,
                    "added": i, "deleted": i % 7, "delta": i - i % 7})
        for i in range(TUTORIAL_ROWS)
    ]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


# PostgreSQL as the Airflow DB passes too (add pytest.param("postgresql", marks=pytest.mark.postgres)); it is left
# out to keep CI time down: it doubles this module's ~2.5 minutes, and the Druid API's own SQL runs on both
# databases in test_druid_api.py.
@pytest.fixture(scope="module", params=["sqlite"])
def cluster(request, tmp_path_factory) -> Iterator[AirflowCluster]:
    """One running Airflow (API server, scheduler, dag-processor) for every test here."""
    home = tmp_path_factory.mktemp(f"airflow-druid-api-{request.param}")
    spec = tutorial_spec(home / "tutorial", "wikipedia_tutorial")
    write_wikiticker(home / "tutorial")
    dag_files = {f"{name}.py": (DAGS_FOLDER / f"{name}.py").read_text()
                 for name in ("druidflow_index", "druidflow_index_parallel", "druidflow_compact", "druidflow_kill")}
    dag_files["druid_client.py"] = CLIENT_DAG
    with druidflow_cluster(
        request,
        home,
        dag_files,
        extra_env={
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "DRUID_TUTORIAL_SPEC": json.dumps(spec),
        },
    ) as started:
        started.tutorial_spec = spec  # type: ignore[attr-defined]
        yield started



def _password(cluster: AirflowCluster, user: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        passwords = json.loads((cluster.home / "passwords.json").read_text() or "{}")
        if user in passwords:
            return passwords[user]
        time.sleep(0.5)
    raise AssertionError(f"no password generated for {user}")


def _druid(cluster: AirflowCluster, method: str, path: str, **kwargs) -> httpx.Response:
    kwargs.setdefault("auth", ("admin", "admin"))
    return httpx.request(method, f"{cluster.base_url}/druid{path}", timeout=30, **kwargs)


def _wait_status(cluster: AirflowCluster, task_id: str, done, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = _druid(cluster, "GET", f"/indexer/v1/task/{task_id}/status")
        assert r.status_code == 200, r.text
        last = r.json()["status"]
        if done(last):
            return last
        time.sleep(1)
    raise TimeoutError(f"task {task_id} status stayed {last}\n{cluster.tail_logs()}")


def test_the_druid_providers_operator_runs_the_tutorial_spec(cluster):
    from druidflow.metadata.store import MetadataStore

    for dag in ("druidflow_index_parallel", "druid_client"):
        cluster.wait_for_dag(dag)
    r = cluster.api("POST", "/api/v2/connections", json={
        "connection_id": "druidflow_overlord", "conn_type": "http", "host": "127.0.0.1", "port": cluster.port,
        "login": "admin", "password": "admin", "extra": json.dumps({"endpoint": "druid/indexer/v1/task"}),
    })
    assert r.status_code == 201, r.text
    run_id = cluster.trigger("druid_client", {})
    state = cluster.wait_for_run("druid_client", run_id, timeout=400)
    assert state == "success", cluster.task_logs("druid_client", run_id) + cluster.tail_logs()

    tasks = _druid(cluster, "GET", "/indexer/v1/tasks", params={"datasource": "wikipedia_tutorial"}).json()
    assert [t["status"] for t in tasks] == ["SUCCESS"] and tasks[0]["type"] == "index_parallel"
    task_id = tasks[0]["id"]
    # The index_parallel task ran as a run of druidflow_index_parallel whose run id is the Druid task id.
    assert cluster.wait_for_run("druidflow_index_parallel", task_id) == "success"  # its release_locks teardown may lag
    states = cluster.task_states("druidflow_index_parallel", task_id)
    assert states["index_parallel.partial_segments"] == ["success"] and states["index_parallel.merge_segments"] == ["success"]
    runs = cluster.dag_runs("druidflow_index_parallel")
    assert [r["dag_run_id"] for r in runs] == [task_id]
    assert runs[0]["triggering_user_name"] == "admin"

    segments = _druid(cluster, "GET", f"/indexer/v1/task/{task_id}/segments").json()
    used = MetadataStore(cluster.db_url).used_segments("wikipedia_tutorial")
    assert sorted(s["identifier"] for s in segments) == sorted(s.id for s in used) and len(used) == 1
    report = _druid(cluster, "GET", f"/indexer/v1/task/{task_id}/reports").json()
    assert report["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]["processed"] == TUTORIAL_ROWS
    payload = _druid(cluster, "GET", f"/indexer/v1/task/{task_id}").json()
    assert payload["payload"]["spec"]["dataSchema"]["dataSource"] == "wikipedia_tutorial"
    coordinator = _druid(cluster, "GET", "/coordinator/v1/datasources/wikipedia_tutorial").json()
    assert coordinator["segments"]["count"] == 1 and coordinator["segments"]["minTime"] == "2015-09-12T00:00:00.000Z"


def test_druids_compaction_and_deletion_tutorials_over_http(cluster):
    """After the tutorial load: compact the day, mark it unused through the Coordinator, kill it for good."""
    from druidflow.metadata.store import MetadataStore

    for dag in ("druidflow_compact", "druidflow_kill"):
        cluster.wait_for_dag(dag)
    store = MetadataStore(cluster.db_url)
    before = store.used_segments("wikipedia_tutorial")
    assert len(before) == 1, "needs the tutorial load of the test above"
    compact = {"type": "compact", "dataSource": "wikipedia_tutorial", "interval": "2015-09-12/2015-09-13",
               "tuningConfig": {"type": "index_parallel", "maxRowsInMemory": 25000,
                                "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 5000000}}}
    r = _druid(cluster, "POST", "/indexer/v1/task", json=compact)
    assert r.status_code == 200, r.text
    compact_id = r.json()["task"]
    status = _wait_status(cluster, compact_id, lambda s: s["status"] != "RUNNING")
    assert status["status"] == "SUCCESS", f"{status}\n{cluster.task_logs('druidflow_compact', compact_id)}"
    after = store.used_segments("wikipedia_tutorial")
    assert len(after) == 1 and after[0].version > before[0].version  # the compacted day replaced the loaded one

    r = _druid(cluster, "DELETE", "/coordinator/v1/datasources/wikipedia_tutorial/intervals/2015-09-12_2015-09-13")
    assert r.json() == {"numChangedSegments": 1}
    assert "wikipedia_tutorial" not in _druid(cluster, "GET", "/coordinator/v1/datasources").json()

    files = [p for p in (cluster.deep_storage / "wikipedia_tutorial").rglob("*") if p.is_file()]
    assert files, "the segments' files are in deep storage until the kill"
    kill = {"type": "kill", "dataSource": "wikipedia_tutorial", "interval": "2015-09-12/2015-09-13"}
    r = _druid(cluster, "POST", "/indexer/v1/task", json=kill)
    assert r.status_code == 200, r.text
    kill_id = r.json()["task"]
    status = _wait_status(cluster, kill_id, lambda s: s["status"] != "RUNNING")
    assert status["status"] == "SUCCESS", f"{status}\n{cluster.task_logs('druidflow_kill', kill_id)}"
    assert store.segments("wikipedia_tutorial", include_unused=True) == []  # a kill from the API deletes
    assert not any(p.is_file() for p in files)


class _SlowInput(BaseHTTPRequestHandler):
    """Serves JSON lines slowly (one every 0.5 s, for at most ~3 minutes): a build reading it is 'mid-build'."""

    started = threading.Event()
    stop = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        type(self).started.set()
        try:
            for i in range(360):
                if type(self).stop.is_set():
                    return
                self.wfile.write(json.dumps({"timestamp": f"2024-01-01T00:00:{i % 60:02d}Z", "page": f"p{i}"}).encode() + b"\n")
                self.wfile.flush()
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            return

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def slow_input() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowInput)
    _SlowInput.started.clear()
    _SlowInput.stop.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/wiki.json"
    finally:
        _SlowInput.stop.set()
        server.shutdown()
        server.server_close()


def test_submit_keeps_the_id_refuses_a_duplicate_and_shutdown_stops_it_mid_build(cluster, slow_input):
    from druidflow.locks import TaskLockbox
    from druidflow.metadata.store import MetadataStore

    cluster.wait_for_dag("druidflow_index")
    task_id = "index_wiki_slow_0001"
    spec = {
        "type": "index",
        "id": task_id,
        "spec": {
            "dataSchema": {
                "dataSource": "wiki_slow",
                "timestampSpec": {"column": "timestamp", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["page"]},
                "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "NONE",
                                    "intervals": ["2024-01-01/2024-01-02"]},
            },
            "ioConfig": {"type": "index", "inputSource": {"type": "http", "uris": [slow_input]},
                         "inputFormat": {"type": "json"}},
        },
    }
    r = _druid(cluster, "POST", "/indexer/v1/task", json=spec)
    assert r.status_code == 200, r.text
    assert r.json() == {"task": task_id}
    again = _druid(cluster, "POST", "/indexer/v1/task", json=spec)
    assert again.status_code == 400 and again.json()["errorMessage"] == f"Task [{task_id}] already exists"

    assert _SlowInput.started.wait(240), f"the build never started reading\n{cluster.tail_logs()}"
    status = _wait_status(cluster, task_id, lambda s: s["runnerStatusCode"] == "RUNNING")
    assert status["status"] == "RUNNING"
    locked = _druid(cluster, "POST", "/indexer/v1/lockedIntervals", json={"wiki_slow": 0}).json()
    assert locked == {"wiki_slow": ["2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z"]}
    assert cluster.task_states("druidflow_index", task_id)["index.build_segments"] == ["running"]

    r = _druid(cluster, "POST", f"/indexer/v1/task/{task_id}/shutdown")
    assert r.status_code == 200 and r.json() == {"task": task_id}
    status = _wait_status(cluster, task_id, lambda s: s["status"] != "RUNNING")
    assert status["status"] == "FAILED" and status["errorMsg"] == "Shutdown request from user"
    assert cluster.wait_for_run("druidflow_index", task_id, timeout=240) == "failed"
    states = cluster.task_states("druidflow_index", task_id)
    assert states["index.build_segments"] == ["failed"] and states["index.publish"] in (["skipped"], ["upstream_failed"])

    store = MetadataStore(cluster.db_url)
    assert store.segments("wiki_slow", include_unused=True) == []  # nothing published, not even partly
    assert [lk for lk in TaskLockbox(store.engine).locks(task_id=task_id) if lk.active] == []
    assert _druid(cluster, "POST", "/indexer/v1/lockedIntervals", json={"wiki_slow": 0}).json() == {}
    assert [t["id"] for t in _druid(cluster, "GET", "/indexer/v1/tasks", params={"state": "complete"}).json()
            if t["dataSource"] == "wiki_slow"] == [task_id]


def test_the_real_server_answers_401_and_403(cluster):
    viewer = ("viewer", _password(cluster, "viewer"))
    assert httpx.get(f"{cluster.base_url}/druid/indexer/v1/tasks", timeout=30).status_code == 401
    assert httpx.get(f"{cluster.base_url}/druid/docs", timeout=30).status_code == 401
    assert httpx.get(f"{cluster.base_url}/druid/openapi.json", timeout=30).status_code == 401
    assert _druid(cluster, "GET", "/indexer/v1/tasks", auth=("admin", "wrong")).status_code == 401
    assert _druid(cluster, "GET", "/indexer/v1/tasks", auth=viewer).status_code == 200
    bearer = {"Authorization": f"Bearer {cluster.token}"}
    assert _druid(cluster, "GET", "/indexer/v1/tasks", auth=None, headers=bearer).status_code == 200
    spec = {"type": "kill", "dataSource": "wiki", "interval": "2024-01-01/2024-01-02"}
    r = _druid(cluster, "POST", "/indexer/v1/task", json=spec, auth=viewer)
    assert r.status_code == 403 and r.json()["category"] == "FORBIDDEN", r.text
