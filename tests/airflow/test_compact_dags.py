"""The compaction operators and DAGs: in-process on SQLite/PostgreSQL with JSON hand-offs, the DAG shapes, and (marked
e2e) both DAGs under a real scheduler, the auto-compaction one started by its own schedule."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import AssetAlias
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from druidflow.airflow.compact_form import compact_spec_from_form
from druidflow.exceptions import SpecError
from druidflow.operators.compact import (
    AutoCompactionPlanOperator,
    AutoCompactionReportOperator,
    CompactAcquireLocksOperator,
    CompactBuildSegmentsOperator,
    CompactOperator,
    CompactPlanOperator,
    CompactPublishOperator,
    CompactSubmitOperator,
)
from druidflow.operators.index import ReleaseLocksOperator
from tests.airflow.conftest import DAGS_FOLDER
from tests.airflow.operator_context import context, xcom
from tests.index_specs import COUNT_AND_SUM_V, index_task, json_lines


def index_spec(day: int, hour: int, ds: str = "events", seg: str = "HOUR") -> dict:
    rows = json_lines({"ts": f"2024-01-{day:02d}T{hour:02d}:{m:02d}:00Z", "d": f"k{m % 2}", "v": m} for m in range(4))
    return index_task(
        data_source=ds, data=rows, timestamp_format="iso", metrics=COUNT_AND_SUM_V, segment_granularity=seg,
        intervals=[f"2024-01-{day:02d}/P1D"], io={"appendToExisting": True},
    )


def seed(rt, ds: str = "events", days=(1, 2, 3), hours=(0, 1, 2)) -> None:
    """Hourly segments, appended twice per hour: fragmented days."""
    from druidflow.tasks import index

    for day in days:
        for hour in hours:
            for _ in range(2):
                index.run(index_spec(day, hour, ds), rt)


@pytest.fixture
def env(monkeypatch, db_url, tmp_path):
    from druidflow.tasks.runtime import Runtime

    rt = Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")
    monkeypatch.setenv("AIRFLOW_CONN_DRUIDFLOW_METADATA", db_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE",
        json.dumps({"conn_type": "druidflow_deep_storage", "extra": {"uri": str(tmp_path / "deep")}}),
    )
    return {"rt": rt, "store": rt.store, "work": str(tmp_path / "work")}


def total(rt, ds: str = "events") -> int:
    import pyarrow as pa
    import pyarrow.compute as pc

    from druidflow.query import visible_rows

    batches = list(visible_rows(rt.store, rt.storage, ds))
    return pc.sum(pa.Table.from_batches(batches)["count"]).as_py() if batches else 0


# ----------------------------------------------------------------------------------------------- shape



def test_trigger_form_builds_a_compact_spec_and_names_bad_fields():
    spec = compact_spec_from_form({"data_source": "wiki", "interval": "2024-01-01/P1W", "segment_granularity": "day",
                                   "query_granularity": "keep", "target_rows_per_segment": 1000, "priority": 30})
    assert spec == {
        "type": "compact", "dataSource": "wiki",
        "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/P1W"}},
        "granularitySpec": {"segmentGranularity": "DAY"},
        "tuningConfig": {"type": "index_parallel", "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 1000}},
        "context": {"priority": 30},
    }
    assert compact_spec_from_form({"spec": {"type": "compact", "dataSource": "x"}, "data_source": "ignored"})["dataSource"] == "x"
    for params, field in (({"interval": "2024-01-01/P1D"}, "data_source"), ({"data_source": "w"}, "interval"),
                          ({"data_source": "w", "interval": "2024-01-01/P1D", "target_rows_per_segment": -5}, "target_rows_per_segment"),
                          ({"data_source": "w", "interval": "2024-01-01/P1D", "segment_granularity": "FORTNIGHT"}, "segment_granularity")):
        with pytest.raises(SpecError) as err:
            compact_spec_from_form(params)
        assert err.value.path == field


def test_dag_shapes(tmp_path):
    """Both DAGs parse (the repo-wide check in test_dagbag.py also proves they import no engine I/O module)."""
    import subprocess
    import sys

    from tests.airflow.conftest import airflow_env

    probe = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}}
for dag_id in ("druidflow_compact", "druidflow_auto_compaction"):
    dag = bag.dags[dag_id]
    out[dag_id] = {
        "tasks": {t.task_id: [type(t).__name__, getattr(t.trigger_rule, "value", str(t.trigger_rule)), sorted(t.upstream_task_ids),
                              getattr(t, "max_active_tis_per_dagrun", None)] for t in dag.tasks},
        "setup": [t.task_id for t in dag.tasks if t.is_setup], "teardown": [t.task_id for t in dag.tasks if t.is_teardown],
        "timetable": type(dag.timetable).__name__, "max_active_runs": dag.max_active_runs, "params": sorted(dag.params),
    }
print(json.dumps(out))
"""
    env = airflow_env(tmp_path, DRUIDFLOW_AUTO_COMPACTION_PARALLELISM="3")
    proc = subprocess.run([sys.executable, "-c", probe, str(DAGS_FOLDER)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    manual = out["druidflow_compact"]
    assert set(manual["tasks"]) == {f"compact.{s}" for s in ("submit", "acquire_locks", "plan", "build_segments", "publish", "release_locks")}
    assert manual["tasks"]["compact.build_segments"][0] == "MappedOperator"
    assert manual["setup"] == ["compact.acquire_locks"] and manual["teardown"] == ["compact.release_locks"]
    assert manual["timetable"] == "NullTimetable"
    assert {"spec", "data_source", "interval", "target_rows_per_segment", "segment_granularity"} <= set(manual["params"])
    auto = out["druidflow_auto_compaction"]
    assert auto["tasks"]["compact"][0] == "MappedOperator" and auto["tasks"]["compact"][3] == 3
    assert auto["tasks"]["report"][1] == "all_done" and auto["tasks"]["report"][2] == ["compact", "plan"]
    assert auto["timetable"] != "NullTimetable" and auto["max_active_runs"] > 1  # scheduled; runs may overlap
    assert {"config", "config_file", "data_sources", "dry_run"} <= set(auto["params"])


# ----------------------------------------------------------------------------------------------- the steps


def test_compact_steps_with_json_handoffs_from_the_trigger_form(env):
    rt = env["rt"]
    seed(rt, days=(1,))
    before = total(rt)
    hourly = rt.store.used_segments("events")
    assert len(hourly) == 6

    params = {"data_source": "events", "interval": "2024-01-01/2024-01-02", "segment_granularity": "DAY", "target_rows_per_segment": 100}
    task = xcom(CompactSubmitOperator(task_id="submit").execute(context(params=params)))
    locks = xcom(CompactAcquireLocksOperator(task_id="acquire", compact_task=task).execute(context()))
    assert [(lk["interval"], lk["priority"]) for lk in locks] == [("2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z", 25)]
    plan_ctx = context()
    units = xcom(CompactPlanOperator(task_id="plan", compact_task=task, work_dir=env["work"]).execute(plan_ctx))
    plan = plan_ctx["ti"].pushed["plan"]
    assert len(units) == 1
    results = [
        xcom(CompactBuildSegmentsOperator(task_id="build", compact_task=task, plan=plan, build_unit=u, work_dir=env["work"]).execute(context()))
        for u in units
    ]
    pub_ctx = context()
    report = xcom(CompactPublishOperator(task_id="publish", compact_task=task, plan=plan, build_results=results).execute(pub_ctx))
    released = ReleaseLocksOperator(task_id="release", index_task=task).execute(context())

    [out] = rt.store.used_segments("events")
    assert out.interval.duration == 86_400_000 and total(rt) == before
    assert sorted(report["markedUnused"]) == sorted(s.id for s in hourly)
    assert out.last_compaction_state["partitionsSpec"]["maxRowsPerSegment"] == 100
    event = pub_ctx["outlet_events"][AssetAlias("druidflow")].asset_alias_events[0]
    assert event.extra["segments"] == [out.id] and event.extra["taskId"] == task["id"]
    assert released == {"id": task["id"], "status": "SUCCESS"}


def test_a_trigger_form_error_fails_before_any_work(env):
    with pytest.raises(AirflowFailException, match="Trigger form field 'interval'"):
        CompactSubmitOperator(task_id="submit").execute(context(params={"data_source": "events"}))
    with pytest.raises(AirflowFailException, match="trigger form field 'interval'"):
        CompactSubmitOperator(task_id="submit").execute(context(params={"data_source": "events", "interval": "2024-01-02/2024-01-01"}))


def test_an_empty_interval_fails_at_acquire_without_retry(env):
    seed(env["rt"], days=(1,), hours=(0,))
    task = xcom(CompactSubmitOperator(task_id="s", spec={"type": "compact", "dataSource": "events", "interval": "2024-05-01/P1D"}).execute(context()))
    with pytest.raises(AirflowFailException, match="nothing to compact"):
        CompactAcquireLocksOperator(task_id="a", compact_task=task).execute(context())
    assert env["store"].get_task(task["id"]).status == "FAILED"


def test_compact_operator_skips_a_preempted_chunk_under_auto_compaction(env):
    rt = env["rt"]
    seed(rt, days=(1,), hours=(0,))
    rt.store.insert_task("index_busy", "index", "events", "index_busy", {"type": "index"})
    assert rt.lockbox.try_lock("index_busy", datasource="events", interval="2024-01-01/P1D", priority=50).acquired
    spec = {"type": "compact", "id": "auto_compact_events_x", "dataSource": "events", "interval": "2024-01-01/P1D"}

    with pytest.raises(AirflowSkipException, match="next auto-compaction run plans this chunk again"):
        CompactOperator(task_id="c", spec=spec, skip_when_preempted=True).execute(context())
    record = env["store"].get_task("auto_compact_events_x")
    assert record.status == "FAILED" and "locked" in record.error_msg

    # by hand, the same conflict is retried (Airflow's retry with backoff), not skipped
    with pytest.raises(AirflowException) as err:
        CompactOperator(task_id="c", spec=dict(spec, id="compact_events_manual"), retries=3).execute(context())
    assert not isinstance(err.value, (AirflowSkipException, AirflowFailException))
    assert rt.lockbox.locks(task_id="compact_events_manual") == []


def test_auto_compaction_plan_run_and_report(env, monkeypatch):
    rt = env["rt"]
    seed(rt)
    # the newest segment ends 2024-01-03T03:00: PT3H skips the last day only
    settings = {"compactionConfigs": [{"dataSource": "events", "skipOffsetFromLatest": "PT3H",
                                       "granularitySpec": {"segmentGranularity": "DAY"}}], "maxCompactionTaskSlots": 5}
    monkeypatch.setenv("AIRFLOW_VAR_DRUIDFLOW_AUTO_COMPACTION", json.dumps(settings))
    plan_ctx = context()
    specs = xcom(AutoCompactionPlanOperator(task_id="plan").execute(plan_ctx))
    report = plan_ctx["ti"].pushed["report"]
    assert [(v["interval"][:10], v["category"]) for v in report["verdicts"]] == [
        ("2024-01-03", "too_recent"), ("2024-01-02", "compact"), ("2024-01-01", "compact")]
    assert len(specs) == 2
    outcomes = []
    for spec in specs:
        outcomes.append(xcom(CompactOperator(task_id="compact", spec=spec, skip_when_preempted=True).execute(context())))
    final = AutoCompactionReportOperator(task_id="report", plan_report=report).execute(context())
    assert final["counts"] == {"compacted": 2, "skipped: too recent": 1}
    compacted = [c for c in final["chunks"] if c["verdict"] == "compacted"]
    assert all("6 segment(s) compacted into 1" in c["reason"] for c in compacted)
    assert total(rt) == 3 * 3 * 2 * 4

    # the next run: nothing left to do but the too-recent day; a dry run with a file config says so too
    path = Path(env["work"]) / "auto.json"
    path.write_text(json.dumps(settings))
    again_ctx = context(params={"config_file": str(path), "dry_run": True})
    assert AutoCompactionPlanOperator(task_id="plan").execute(again_ctx) == []
    assert [v["category"] for v in again_ctx["ti"].pushed["report"]["verdicts"]] == ["too_recent", "already_compacted", "already_compacted"]

    # a dry run reports what it would compact, and starts nothing
    from druidflow.tasks import index

    index.run(index_spec(1, 5, seg="DAY"), rt)  # late data appended to the compacted day
    dry_ctx = context(params={"config": settings, "dry_run": True})
    assert AutoCompactionPlanOperator(task_id="plan").execute(dry_ctx) == []
    dry = AutoCompactionReportOperator(task_id="report", plan_report=dry_ctx["ti"].pushed["report"]).execute(context())
    assert dry["dryRun"] is True
    assert [(c["interval"][:10], c["verdict"]) for c in dry["chunks"]] == [
        ("2024-01-03", "skipped: too recent"), ("2024-01-02", "skipped: already compacted"), ("2024-01-01", "compact (dry run)")]


def test_auto_compaction_settings_errors_fail_the_plan_naming_the_field(env, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_DRUIDFLOW_AUTO_COMPACTION", json.dumps([{"dataSource": "events", "inputSegmentSizeByte": 5}]))
    with pytest.raises(AirflowFailException, match=r"compactionConfigs\[0\]\.inputSegmentSizeByte"):
        AutoCompactionPlanOperator(task_id="plan").execute(context())


def test_auto_compaction_without_its_variable_compacts_nothing_and_says_how_to_configure(env, monkeypatch, capfd):
    monkeypatch.delenv("AIRFLOW_VAR_DRUIDFLOW_AUTO_COMPACTION", raising=False)
    monkeypatch.delenv("DRUIDFLOW_AUTO_COMPACTION_CONFIG", raising=False)
    from druidflow.tasks import index

    index.run(index_spec(1, 5), env["rt"])  # a dataSource exists, but none is configured
    ctx = context()
    assert AutoCompactionPlanOperator(task_id="plan").execute(ctx) == []
    logged = "".join(capfd.readouterr())
    assert "Auto-compaction is not configured" in logged and "'druidflow_auto_compaction'" in logged
    # the report step finds the plan's report (no XComNotFound) and reports nothing to do
    report = AutoCompactionReportOperator(task_id="report", plan_report=xcom(ctx["ti"].pushed["report"])).execute(context())
    assert report["chunks"] == [] and report["counts"] == {}


# ----------------------------------------------------------------------------------------------- real scheduler


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def cluster(request, tmp_path_factory) -> Iterator[Any]:
    """A running Airflow (scheduler, dag-processor, api-server) with the druidflow_* tables in its DB and the
    auto-compaction settings in a Variable. The DAG folder starts with druidflow_compact only."""
    from tests.airflow.cluster import druidflow_cluster

    home = tmp_path_factory.mktemp(f"airflow-compact-{request.param}")
    settings = {
        "compactionConfigs": [
            {"dataSource": "wiki_auto", "skipOffsetFromLatest": "PT3H", "granularitySpec": {"segmentGranularity": "DAY"}},
        ],
        "maxCompactionTaskSlots": 4,
    }
    dag_files = {"druidflow_compact.py": (DAGS_FOLDER / "druidflow_compact.py").read_text()}
    extra = {"AIRFLOW_VAR_DRUIDFLOW_AUTO_COMPACTION": json.dumps(settings), "DRUIDFLOW_AUTO_COMPACTION_PARALLELISM": "2"}
    with druidflow_cluster(request, home, dag_files, extra) as started:
        yield started


def _runtime(cluster):
    from druidflow.tasks.runtime import Runtime

    return Runtime.from_urls(cluster.db_url, str(cluster.deep_storage), cluster.home / "work-tests", migrate=False)


@pytest.mark.e2e
@pytest.mark.slow
def test_druidflow_compact_run_from_the_trigger_form(cluster):
    rt = _runtime(cluster)
    seed(rt, ds="wiki_manual", days=(1,))
    before = total(rt, "wiki_manual")
    cluster.wait_for_dag("druidflow_compact")
    run_id = cluster.trigger("druidflow_compact", {"data_source": "wiki_manual", "interval": "2024-01-01/2024-01-02",
                                                   "segment_granularity": "DAY"})
    state = cluster.wait_for_run("druidflow_compact", run_id)
    states = cluster.task_states("druidflow_compact", run_id)
    assert state == "success", f"{states}\n{cluster.task_logs('druidflow_compact', run_id)}"
    assert states["compact.build_segments"] == ["success"]
    [out] = rt.store.used_segments("wiki_manual")
    assert out.interval.duration == 86_400_000 and total(rt, "wiki_manual") == before
    report = cluster.xcom("druidflow_compact", run_id, "compact.publish")
    assert len(report["markedUnused"]) == 6
    assert [e["extra"]["segments"] for e in cluster.asset_events("druidflow://wiki_manual")] == [[out.id]]


@pytest.mark.e2e
@pytest.mark.slow
def test_the_scheduled_auto_compaction_run_reports_every_chunk(cluster):
    rt = _runtime(cluster)
    seed(rt, ds="wiki_auto", days=(1, 2, 3, 4))
    # an ingestion holds day 2: the run must skip it as locked and still compact the others
    rt.store.insert_task("index_wiki_auto_busy", "index", "wiki_auto", "index_wiki_auto_busy", {"type": "index"})
    from druidflow.locks import TaskLockbox

    busy = TaskLockbox(rt.store.engine, lease_seconds=3600)
    assert busy.try_lock("index_wiki_auto_busy", datasource="wiki_auto", interval="2024-01-02/P1D", priority=50).acquired
    before = total(rt, "wiki_auto")

    # Only now does the DAG appear: the scheduler starts its (scheduled, not triggered) run on its own.
    shutil.copy(DAGS_FOLDER / "druidflow_auto_compaction.py", cluster.dags_folder / "druidflow_auto_compaction.py")
    cluster.wait_for_dag("druidflow_auto_compaction")
    run_id = None
    deadline = time.monotonic() + 120
    while run_id is None and time.monotonic() < deadline:
        runs = cluster.api("GET", "/api/v2/dags/druidflow_auto_compaction/dagRuns").json()["dag_runs"]
        run_id = next((r["dag_run_id"] for r in runs if r["run_type"] == "scheduled"), None)
        time.sleep(1)
    assert run_id, "the scheduler did not start a scheduled run"
    state = cluster.wait_for_run("druidflow_auto_compaction", run_id, timeout=300)
    states = cluster.task_states("druidflow_auto_compaction", run_id)
    assert state == "success", f"{states}\n{cluster.task_logs('druidflow_auto_compaction', run_id)}"
    assert states["compact"] == ["success", "success"]

    report = cluster.xcom("druidflow_auto_compaction", run_id, "report")
    verdicts = {c["interval"][:10]: (c["verdict"], c["reason"]) for c in report["chunks"]}
    assert verdicts["2024-01-04"][0] == "skipped: too recent"
    assert verdicts["2024-01-02"][0] == "skipped: locked" and "index_wiki_auto_busy" in verdicts["2024-01-02"][1]
    assert verdicts["2024-01-03"][0] == verdicts["2024-01-01"][0] == "compacted"
    logs = cluster.task_logs("druidflow_auto_compaction", run_id)
    assert "wiki_auto 2024-01-02/2024-01-03: skipped: locked" in logs and "compacted" in logs

    by_day = {}
    for s in rt.store.used_segments("wiki_auto"):
        by_day.setdefault(str(s.interval)[:10], []).append(s)
    assert [len(by_day[d]) for d in ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04")] == [1, 6, 1, 6]
    assert total(rt, "wiki_auto") == before
    busy.release_all("index_wiki_auto_busy")
