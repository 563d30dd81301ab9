"""Stream push on a real Airflow API server: the plugin mounts Druid's push paths behind Airflow's authentication,
the events land in the spool of the Airflow DB, /druidflow/push shows them pending, and a handoff publishes them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.airflow.cluster import AirflowCluster, druidflow_cluster
from tests.push.helpers import events, ndjson, published_ids, realtime_spec

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", params=["sqlite"])
def cluster(request, tmp_path_factory) -> Iterator[AirflowCluster]:
    home = tmp_path_factory.mktemp("push-airflow")
    specs = home / "push-specs"
    specs.mkdir()
    (specs / "pushed.json").write_text(json.dumps(realtime_spec("pushed", service_name="firehose:pushed")))
    with druidflow_cluster(request, home, {}, {"DRUIDFLOW_PUSH_SPECS": str(specs)}) as started:
        started.specs = specs  # type: ignore[attr-defined]
        yield started


def test_push_endpoints_on_the_airflow_api_server(cluster):
    from druidflow.push.runner import drain
    from druidflow.push.spec import RealtimeTask
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

    rt = Runtime.from_urls(cluster.db_url, str(cluster.deep_storage), cluster.home / "work-test")
    task = RealtimeTask.load(json.loads((cluster.specs / "pushed.json").read_text()))
    assert drain(task, rt) == 7
    assert sorted(published_ids(rt, "pushed")) == ["0", "1", "2", "3", "4", "f1", "f2"]
    [row] = [d for d in cluster.api("GET", "/druidflow/push").json()["dataSources"] if d["dataSource"] == "pushed"]
    assert (row["pendingEvents"], row["committedEvents"]) == (0, 7)
