"""Stream push on a real Airflow: the plugin mounts Druid's push paths on the API server behind Airflow's
authentication, the events land in the spool of the Airflow DB, /druidflow/push shows them pending, and the
``druidflow_push_handoff`` DAG, under the real scheduler, publishes them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.airflow.cluster import AirflowCluster, druidflow_cluster
from tests.airflow.conftest import DAGS_FOLDER
from tests.push.helpers import events, ndjson, published_ids, realtime_spec

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", params=["sqlite"])
def cluster(request, tmp_path_factory) -> Iterator[AirflowCluster]:
    home = tmp_path_factory.mktemp("push-airflow")
    specs = home / "push-specs"
    specs.mkdir()
    (specs / "pushed.json").write_text(json.dumps(realtime_spec("pushed", service_name="firehose:pushed")))
    dag_files = {"druidflow_push_handoff.py": (DAGS_FOLDER / "druidflow_push_handoff.py").read_text()}
    env = {"DRUIDFLOW_PUSH_SPECS": str(specs), "DRUIDFLOW_PUSH_HANDOFF_SCHEDULE": "none"}
    with druidflow_cluster(request, home, dag_files, env) as started:
        started.specs = specs  # type: ignore[attr-defined]
        yield started


def test_push_endpoints_on_the_airflow_api_server(cluster):
    from druidflow.tasks.runtime import Runtime

    now = int(time.time() * 1000)
    body = ndjson(events(now, range(5)) + events(now - 3_600_000, ["too-old"]))
    assert httpx.post(f"{cluster.base_url}/v1/post/pushed", content=body, timeout=30).status_code == 401
    r = cluster.api("POST", "/v1/post/pushed", content=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"result": {"received": 6, "sent": 5}}
    r = cluster.api("POST", "/druid/worker/v1/chat/firehose:pushed/push-events", json=events(now, ["f1", "f2"]))
    assert r.status_code == 200 and r.json() == {"eventCount": 2, "sent": 2}
    assert cluster.api("POST", "/v1/post/unknown", json=[]).status_code == 404
    assert cluster.api("POST", "/v1/post/pushed", content=b'{"ts": 1}\n{oops}\n').status_code == 400

    status = cluster.api("GET", "/druidflow/push").json()
    [row] = [d for d in status["dataSources"] if d["dataSource"] == "pushed"]
    assert (row["pendingEvents"], row["configured"], row["sinceStart"]["thrownAway"]) == (7, True, 1)

    cluster.wait_for_dag("druidflow_push_handoff")
    run_id = cluster.trigger("druidflow_push_handoff", {"drain": True})
    state = cluster.wait_for_run("druidflow_push_handoff", run_id)
    assert state == "success", cluster.task_logs("druidflow_push_handoff", run_id)
    out = cluster.xcom("druidflow_push_handoff", run_id, "handoff")
    assert sum(h["events"] for h in out["handoffs"]) == 7 and out["pendingEvents"] == {"pushed": 0}
    rt = Runtime.from_urls(cluster.db_url, str(cluster.deep_storage), cluster.home / "work-test", migrate=False)
    assert sorted(published_ids(rt, "pushed")) == ["0", "1", "2", "3", "4", "f1", "f2"]
    assert {t.type for t in rt.store.list_tasks(datasource="pushed")} == {"index_realtime"}
    [row] = [d for d in cluster.api("GET", "/druidflow/push").json()["dataSources"] if d["dataSource"] == "pushed"]
    assert (row["pendingEvents"], row["committedEvents"]) == (0, 7)
