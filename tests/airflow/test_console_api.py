"""The console's JSON API and page, mounted in Airflow's real API app: authentication, authorisation for the kill,
and what each view's data says about a seeded dataSource (see ``console_seed``)."""

from __future__ import annotations

import pytest

from tests.airflow.console_seed import DS, seed


@pytest.fixture(scope="module")
def airflow_app(airflow_db):
    from airflow.api_fastapi.app import create_app

    return create_app()


def _token(role: str) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=role, role=role))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def seeded(db_url):
    from druidflow.metadata.engine import make_engine

    engine = make_engine(db_url)
    return engine, seed(engine)


@pytest.fixture
def client(airflow_app, seeded):
    from fastapi.testclient import TestClient

    from druidflow.airflow.console.app import get_engine
    from druidflow.airflow.plugin import DruidflowPlugin

    sub_app = next(a["app"] for a in DruidflowPlugin.fastapi_apps if a["url_prefix"] == "/druidflow-console")
    sub_app.dependency_overrides[get_engine] = lambda: seeded[0]
    yield TestClient(airflow_app)
    sub_app.dependency_overrides.clear()


def get(client, path, role="admin", **params):
    r = client.get(f"/druidflow-console{path}", params=params, headers=_token(role))
    assert r.status_code == 200, r.text
    return r.json() if "json" in r.headers["content-type"] else r.text


@pytest.mark.parametrize("path", ["/", "/static/console.js", "/api/datasources", f"/api/datasources/{DS}/timeline",
                                  "/api/tasks", "/api/tasks/index_wiki_01", "/api/locks", "/api/compaction"])
def test_every_route_needs_an_authenticated_user(client, path):
    assert client.get(f"/druidflow-console{path}").status_code == 401
    assert client.get(f"/druidflow-console{path}", headers={"Authorization": "Bearer nope"}).status_code in (401, 403)


def test_the_ui_cookie_authenticates_like_a_bearer_token(client):
    token = _token("viewer")["Authorization"].split()[1]
    r = client.get("/druidflow-console/api/datasources", cookies={"_token": token})
    assert r.status_code == 200 and r.json()[0]["dataSource"] == DS


def test_the_plugin_adds_the_console_to_airflows_navigation():
    from druidflow.airflow.plugin import DruidflowPlugin

    view = next(v for v in DruidflowPlugin.external_views if v["url_route"] == "druidflow_console")
    assert view["href"] == "/druidflow-console/" and view["destination"] == "nav"


def test_page_and_assets_are_served(client):
    assert "Druidflow console" in get(client, "/")
    assert "views.timeline" in get(client, "/static/console.js")
    assert client.get("/druidflow-console/static/../app.py", headers=_token("admin")).status_code == 404


def test_datasources_summarise_used_and_unused_segments_rules_and_last_ingestion(client):
    (row,) = get(client, "/api/datasources")
    # used: month 1 + d01 2 + d02 old 2 + d02 new 1 + d03 old 1 + d03 new 2 + d05 1 = 10 segments of 10 rows each
    assert row["segments"] == 10 and row["rows"] == 100
    assert row["size"] == 1000 * 7 + 2000 * 3
    assert (row["start"], row["end"]) == ("2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z")
    assert (row["unusedSegments"], row["unusedSize"]) == (1, 1000)
    assert [r["type"] for r in row["rules"]] == ["loadByPeriod", "dropForever"]
    assert row["lastIngestion"] and row["lastIngestion"].startswith("20")


def test_timeline_states_follow_druids_rules(client, seeded):
    versions = seeded[1]["versions"]
    tl = get(client, f"/api/datasources/{DS}/timeline")
    assert tl["mode"] == "sets"
    state = {(s["start"][:10], s["version"]): s["state"] for s in tl["sets"]}
    assert state[("2024-01-01", versions["d01"])] == "visible"
    assert state[("2024-01-02", versions["d02_old"])] == "visible"
    assert state[("2024-01-02", versions["d02_new"])] == "incomplete"
    assert state[("2024-01-02", versions["unused"])] == "unused"
    assert state[("2024-01-03", versions["d03_old"])] == "overshadowed"
    assert state[("2024-01-03", versions["d03_new"])] == "visible"
    assert state[("2024-01-01", versions["month"])] == "partly visible"
    incomplete = next(s for s in tl["sets"] if s["version"] == versions["d02_new"])
    assert (incomplete["complete"], incomplete["corePartitions"], incomplete["segments"]) == (False, 2, 1)
    # The month set shows through everywhere but 01-03 and 05: no gaps inside the extent.
    assert tl["gaps"] == []


def test_timeline_window_shows_gaps_and_only_overlapping_sets(client, seeded):
    versions = seeded[1]["versions"]
    tl = get(client, f"/api/datasources/{DS}/timeline", start="2024-01-03", end="2024-01-06")
    assert tl["window"]["start"] == "2024-01-03T00:00:00.000Z"
    assert {s["start"][:10] for s in tl["sets"]} == {"2024-01-01", "2024-01-03", "2024-01-05"}  # month + days
    month = next(s for s in tl["sets"] if s["version"] == versions["month"])
    assert month["state"] == "partly visible" and month["visibleMs"] == 86_400_000  # only the 4th, in this window


def test_timeline_without_the_month_set_has_a_gap_on_the_fourth(client, seeded):
    from druidflow.metadata.store import MetadataStore

    engine, info = seeded
    store = MetadataStore(engine)
    month = [s.id for s in store.segments(DS) if s.segment.version == info["versions"]["month"]]
    store.mark_unused(DS, segment_ids=month, reason="dropped-by-user")
    tl = get(client, f"/api/datasources/{DS}/timeline", start="2024-01-01", end="2024-01-06")
    assert [(g["start"][:10], g["end"][:10]) for g in tl["gaps"]] == [("2024-01-04", "2024-01-05")]


def test_a_crowded_window_is_shown_as_density(client, monkeypatch):
    from druidflow.airflow.console import timeline_view

    monkeypatch.setattr(timeline_view, "MAX_SETS", 3)
    tl = get(client, f"/api/datasources/{DS}/timeline")
    assert tl["mode"] == "density"
    assert sum(b["segments"] for b in tl["buckets"] if b["used"]) == 10
    assert sum(b["segments"] for b in tl["buckets"] if not b["used"]) == 1


def test_a_chunk_lists_its_segments_with_shard_specs_and_the_task_that_wrote_them(client, seeded):
    ids, versions = seeded[1]["ids"], seeded[1]["versions"]
    d = get(client, f"/api/datasources/{DS}/sets", start="2024-01-03T00:00:00.000Z", end="2024-01-04T00:00:00.000Z",
            version=versions["d03_new"])
    assert d["total"] == 2
    assert [s["partitionNum"] for s in d["segments"]] == [0, 1]
    assert d["segments"][1]["shardSpec"] == {"type": "numbered", "partitionNum": 1, "partitions": 2}
    assert [s["size"] for s in d["segments"]] == [1000, 2000] and d["segments"][0]["numRows"] == 10
    assert [w["taskId"] for w in d["writers"]] == [ids["d03_new"]]
    page = get(client, f"/api/datasources/{DS}/sets", start="2024-01-03", end="2024-01-04",
               version=versions["d03_new"], offset=1, limit=1)
    assert [s["partitionNum"] for s in page["segments"]] == [1] and page["total"] == 2


def test_a_partition_set_needs_both_ends_of_its_chunk(client, seeded):
    r = client.get(f"/druidflow-console/api/datasources/{DS}/sets", headers=_token("admin"),
                   params={"start": "2024-01-03T00:00:00.000Z", "end": "", "version": seeded[1]["versions"]["d03_new"]})
    assert r.status_code == 400 and "start and end" in r.json()["detail"]


def test_the_kill_preview_storage_refuses_every_use_naming_it():
    from druidflow.airflow.no_storage import NoDeepStorage

    storage = NoDeepStorage("the console's kill preview")
    for use in (lambda: storage.uri, lambda: storage.exists({"type": "local", "path": "/x"}), lambda: storage.list_keys()):
        with pytest.raises(RuntimeError, match="the console's kill preview must not touch deep storage"):
            use()
    assert not hasattr(storage, "__deepcopy__")  # probes for optional protocols get AttributeError, not RuntimeError


def test_tasks_filter_by_status_type_and_datasource_and_page(client):
    failed = get(client, "/api/tasks", status="FAILED")["tasks"]
    assert [t["id"] for t in failed] == ["index_wiki_failed"]
    assert failed[0]["errorMsg"].startswith("spec.ioConfig")
    running = {t["id"] for t in get(client, "/api/tasks", status="RUNNING")["tasks"]}
    assert running == {"index_wiki_running", "compact_wiki_low", "index_wiki_high"}
    assert [t["id"] for t in get(client, "/api/tasks", type="compact")["tasks"]] == ["compact_wiki_low"]
    assert get(client, "/api/tasks", dataSource="other")["tasks"] == []
    first = get(client, "/api/tasks", limit=5)
    second = get(client, "/api/tasks", limit=5, offset=5)
    assert first["more"] and len(first["tasks"]) == 5
    assert not {t["id"] for t in first["tasks"]} & {t["id"] for t in second["tasks"]}
    assert first["tasks"][0]["createdTime"] >= first["tasks"][-1]["createdTime"] >= second["tasks"][0]["createdTime"]
    assert set(first["types"]) == {"index", "compact"}
    assert client.get("/druidflow-console/api/tasks", params={"status": "BOGUS"}, headers=_token("admin")).status_code == 422


def test_task_detail_has_the_report_with_row_stats_and_parse_exceptions(client):
    t = get(client, "/api/tasks/index_wiki_01")
    payload = t["report"]["ingestionStatsAndErrors"]["payload"]
    assert payload["rowStats"]["buildSegments"]["processed"] == 1234
    assert payload["unparseableEvents"]["buildSegments"][0]["details"]["errorMessage"].startswith("Unparseable")
    assert t["status"] == "SUCCESS" and t["duration"] >= 0
    assert t["airflow"] is None  # seeded outside Airflow: no DAG run to link
    assert client.get("/druidflow-console/api/tasks/nope", headers=_token("admin")).status_code == 404


def test_locks_show_active_and_revoked_with_who_revoked(client):
    locks = get(client, "/api/locks")["locks"]
    by_task = {lk["taskId"]: lk for lk in locks}
    assert by_task["index_wiki_running"]["state"] == "active" and by_task["index_wiki_running"]["priority"] == 50
    low = by_task["compact_wiki_low"]
    assert low["revoked"] and [e["actor"] for e in low["events"] if e["event"] == "revoke"] == ["index_wiki_high"]
    assert by_task["index_wiki_high"]["leaseExpires"]


def test_compaction_without_a_run_says_so(client):
    assert get(client, "/api/compaction")["plan"] is None


def test_kill_preview_lists_what_would_be_deleted_and_deletes_nothing(client, seeded):
    from druidflow.metadata.store import MetadataStore

    engine, info = seeded
    r = client.post("/druidflow-console/api/kill/preview", json={"dataSource": DS, "interval": "2024-01-01/2024-01-08"},
                    headers=_token("viewer"))
    assert r.status_code == 200, r.text
    report = r.json()["report"]
    assert report["dryRun"] and report["numSegmentsToKill"] == 1 and report["bytesToKill"] == 1000
    assert report["segments"][0].startswith(f"{DS}_2024-01-02")
    assert "used" in report["skipped"]
    assert len(MetadataStore(engine).unused_segments(DS)) == 1  # still there


def test_kill_preview_names_the_bad_field(client):
    r = client.post("/druidflow-console/api/kill/preview", json={"dataSource": DS, "interval": "last tuesday"},
                    headers=_token("admin"))
    assert r.status_code == 400 and "interval" in r.json()["detail"] and "last tuesday" in r.json()["detail"]


def test_confirming_a_kill_needs_airflows_permission_to_trigger_druidflow_kill(client):
    body = {"dataSource": DS, "interval": "2024-01-01/2024-01-08"}
    headers = {"X-Druidflow-Console": "1"}
    assert client.post("/druidflow-console/api/kill", json=body, headers={**headers, **_token("viewer")}).status_code == 403
    # An admin may; this test's Airflow has not loaded the DAG, so the trigger itself says so.
    r = client.post("/druidflow-console/api/kill", json=body, headers={**headers, **_token("admin")})
    assert r.status_code == 404 and "druidflow_kill" in r.json()["detail"]
    # Without the console's header (a cross-site form post), nothing is triggered.
    assert client.post("/druidflow-console/api/kill", json=body, headers=_token("admin")).status_code == 403


def test_a_confirmed_kill_deletes_nothing_marked_unused_after_its_preview(client, monkeypatch):
    from druidflow.airflow.console import airflow_side

    preview = client.post("/druidflow-console/api/kill/preview", json={"dataSource": DS, "interval": "2024-01-02/P1D"},
                          headers=_token("admin")).json()
    triggered = []
    monkeypatch.setattr(airflow_side, "trigger_kill", lambda dag_id, conf, user: triggered.append((dag_id, conf, user)) or {})
    r = client.post("/druidflow-console/api/kill", headers={"X-Druidflow-Console": "1", **_token("admin")},
                    json={"dataSource": DS, "interval": "2024-01-02/P1D", "previewedAt": preview["previewedAt"]})
    assert r.status_code == 200, r.text
    assert triggered == [("druidflow_kill", {
        "data_source": DS, "interval": "2024-01-02T00:00:00.000Z/2024-01-03T00:00:00.000Z", "confirm": True,
        "max_used_status_last_updated_time": preview["previewedAt"]}, "admin")]
    bad = client.post("/druidflow-console/api/kill", headers={"X-Druidflow-Console": "1", **_token("admin")},
                      json={"dataSource": DS, "interval": "2024-01-02/P1D", "previewedAt": "soon"})
    assert bad.status_code == 400 and "previewedAt" in bad.json()["detail"]
