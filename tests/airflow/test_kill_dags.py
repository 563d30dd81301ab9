"""The deletion operators and the ``druidflow_kill`` / ``druidflow_retention`` DAGs.

In-process: each operator's ``execute`` with a minimal context against real SQLite/PostgreSQL and real files
(the way a worker calls it). DagBag: the DAG files parse in a fresh interpreter without engine I/O imports.
End to end (``e2e``): both DAGs under a real scheduler, api-server and dag-processor, with Druidflow's tables in the
Airflow database and the retention configuration in an Airflow Variable.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from druidflow.intervals import MS_DAY, format_instant, now_ms
from druidflow.metadata.tables import segments as S
from druidflow.operators.kill import (
    ApplyRetentionRulesOperator,
    DruidKillOperator,
    MarkSegmentsUnusedOperator,
    MarkSegmentsUsedOperator,
    ScheduledKillOperator,
)
from druidflow.tasks.runtime import Runtime
from tests.airflow.conftest import DAGS_FOLDER, airflow_env
from tests.tasks.test_kill import DS, V2, day, details, files, rows, seed, unuse


class FakeTI:
    def __init__(self, try_number: int = 1, task_id: str = "kill") -> None:
        self.try_number = try_number
        self.task_id = task_id
        self.map_index = -1


def context(params=None, run_id="manual__2024-06-01", try_number=1):
    return {"ti": FakeTI(try_number), "params": params or {}, "run_id": run_id}


@pytest.fixture
def env(monkeypatch, db_url, tmp_path) -> Runtime:
    """Connections to a migrated metadata DB and a local deep storage; the engine's runtime on the same ones."""
    deep = tmp_path / "deep"
    monkeypatch.setenv("AIRFLOW_CONN_DRUIDFLOW_METADATA", db_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE",
        json.dumps({"conn_type": "druidflow_deep_storage", "extra": {"uri": str(deep)}}),
    )
    return Runtime.from_urls(db_url, str(deep), tmp_path / "work")


# ---------------------------------------------------------------------------------------------------- kill


def test_the_trigger_form_gives_a_dry_run_until_confirm_is_ticked(env):
    segments = seed(env, [day(1), day(2)])
    unuse(env, segments)
    form = {"data_source": DS, "interval": "2024-01-01/2024-02-01", "batch_size": 100, "versions": [], "confirm": False}
    plan = details(DruidKillOperator(task_id="kill").execute(context(form)))
    assert plan["dryRun"] is True and set(plan["segments"]) == {s.id for s in segments}
    assert len(plan["files"]) == 2 and len(rows(env)) == 2 and len(files(env)) == 2

    # a whole spec pasted into the form is still a dry run without confirm
    whole = {"spec": {"type": "kill", "dataSource": DS, "interval": "2024-01-01/2024-02-01"}, "confirm": False}
    assert details(DruidKillOperator(task_id="kill").execute(context(whole, run_id="manual__2")))["dryRun"] is True
    assert len(rows(env)) == 2

    done = details(DruidKillOperator(task_id="kill").execute(context({**form, "confirm": True}, run_id="manual__3")))
    assert done["dryRun"] is False and done["segments"] == plan["segments"] and done["files"] == plan["files"]
    assert rows(env) == {} and files(env) == set()
    assert env.store.get_task(done["taskId"]).status == "SUCCESS"


def test_a_spec_given_by_the_dag_author_runs_as_written(env):
    segments = seed(env, [day(1), day(2)])
    unuse(env, segments)
    spec = {"type": "kill", "dataSource": DS, "interval": "2024-01-01/2024-02-01", "context": {"dryRun": True}}
    assert details(DruidKillOperator(task_id="kill", spec=spec).execute(context()))["dryRun"] is True
    assert len(rows(env)) == 2
    report = details(DruidKillOperator(task_id="kill", data_source=DS, interval="2024-01-01/2024-01-02").execute(context()))
    assert report["segments"] == [segments[0].id] and set(rows(env)) == {segments[1].id}
    report = details(DruidKillOperator(task_id="kill", spec=json.dumps({**spec, "context": {}})).execute(context(run_id="r2")))
    assert report["segments"] == [segments[1].id] and rows(env) == {}


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"interval": "2024-01-01/2024-02-01"}, "data_source"),
        ({"data_source": DS}, "interval"),
        ({"data_source": DS, "interval": "2024-02-01/2024-01-01"}, "interval"),
        ({"data_source": DS, "interval": "2024-01-01/2024-02-01", "batch_size": 0}, "batch_size"),
        ({"data_source": DS, "interval": "2024-01-01/2024-02-01", "max_used_status_last_updated_time": "yesterday"},
         "max_used_status_last_updated_time"),
    ],
)
def test_trigger_form_errors_name_the_form_field(env, form, field):
    with pytest.raises(AirflowFailException, match=f"'{field}'"):
        details(DruidKillOperator(task_id="kill").execute(context(form)))
    assert env.store.list_tasks() == [] or all(t.status == "FAILED" for t in env.store.list_tasks())


def test_the_druid_task_id_is_stable_across_airflow_retries(env):
    form = {"data_source": DS, "interval": "2024-01-01/2024-02-01", "confirm": True}
    first = details(DruidKillOperator(task_id="kill").execute(context(form, try_number=1)))
    again = details(DruidKillOperator(task_id="kill").execute(context(form, try_number=2)))
    other = details(DruidKillOperator(task_id="kill").execute(context(form, run_id="manual__other")))
    assert first["taskId"] == again["taskId"] != other["taskId"]
    assert first["taskId"].startswith(f"kill_{DS}_")


def test_an_ingest_holding_the_interval_makes_the_kill_retry(env):
    segments = seed(env, [day(1)])
    unuse(env, segments)
    assert env.lockbox.try_lock("index_wiki_9", datasource=DS, interval=day(1), priority=50).acquired
    op = DruidKillOperator(task_id="kill", data_source=DS, interval="2024-01-01/2024-02-01")
    with pytest.raises(AirflowException) as caught:
        op.execute(context())
    assert not isinstance(caught.value, AirflowFailException) and "index_wiki_9" in str(caught.value)
    assert len(rows(env)) == 1


def test_a_revoked_kill_fails_at_once_saying_what_it_deleted(env, monkeypatch):
    from druidflow.tasks import kill

    segments = seed(env, [day(n) for n in range(1, 5)])
    unuse(env, segments)

    def ingest(step):
        if step.step == "rows_deleted" and step.batch == 1:
            assert env.lockbox.try_lock("index_wiki_10", datasource=DS, interval="2024-01-01/2024-02-01", priority=50).acquired

    monkeypatch.setattr(kill, "run", functools.partial(kill.run, checkpoint=ingest))
    op = DruidKillOperator(task_id="kill", data_source=DS, interval="2024-01-01/2024-02-01", batch_size=2)
    with pytest.raises(AirflowFailException, match="deleted 2 segment"):
        op.execute(context())
    (task,) = env.store.list_tasks(DS)
    assert task.status == "FAILED" and "revoked" in task.error_msg
    assert task.report["killUnusedSegments"]["payload"]["numSegmentsKilled"] == 2
    assert len(rows(env)) == 2


def test_mark_unused_and_used_operators(env):
    segments = seed(env, [day(1), day(2), day(3)])
    out = MarkSegmentsUnusedOperator(task_id="m", data_source=DS, interval="2024-01-01/2024-01-03").execute(context())
    assert out == {"dataSource": DS, "markedUnused": 2}
    out = MarkSegmentsUsedOperator(task_id="u", data_source=DS, segment_ids=[segments[0].id]).execute(context())
    assert out == {"dataSource": DS, "markedUsed": 1}
    out = MarkSegmentsUnusedOperator(task_id="m", data_source=DS, all_segments=True, reason="oops").execute(context())
    assert out["markedUnused"] == 2
    with pytest.raises(AirflowFailException, match="exactly one"):
        MarkSegmentsUnusedOperator(task_id="m", data_source=DS).execute(context())


# ---------------------------------------------------------------------------------------------------- retention


def _age(rt: Runtime, segments, days: int) -> None:
    with rt.store.engine.begin() as c:
        c.execute(
            sa.update(S)
            .where(S.c.id.in_([s.id for s in segments]))
            .values(used_status_last_updated=format_instant(now_ms() - days * MS_DAY))
        )


def test_retention_operators_apply_rules_and_kill_only_where_enabled(env):
    from druidflow import retention

    recent_end = now_ms() - now_ms() % MS_DAY
    from druidflow.intervals import Interval

    recent = seed(env, [Interval(recent_end - MS_DAY, recent_end)])
    old = seed(env, [day(1), day(2)])
    other_old = seed(env, [day(1)], ds="other")
    retention.set_rules(env.store, DS, [{"type": "loadByPeriod", "period": "P30D"}, {"type": "dropForever"}])
    retention.set_rules(env.store, "other", [{"type": "dropForever"}])

    results = ApplyRetentionRulesOperator(task_id="rules", config={}).execute(context())
    assert {r["dataSource"]: r["markedUnused"] for r in results} == {DS: 2, "other": 1}
    assert rows(env)[recent[0].id]["used"] and not rows(env)[old[0].id]["used"]

    # Just marked unused: inside the buffer period. And no kill is configured at all by default.
    assert ScheduledKillOperator(task_id="kill", config=None).load_config().kill.enabled is False
    config = {"kill": {"dataSources": {DS: {"enabled": True}}}}
    (result,) = ScheduledKillOperator(task_id="kill", config=config).execute(context())
    assert details(result["report"])["numSegmentsKilled"] == 0
    assert details(result["report"])["skipped"]["withinBufferPeriod"]["segments"] == 2

    _age(env, old + other_old, 31)
    plan = ScheduledKillOperator(task_id="kill", config=config, dry_run=True).execute(context())
    assert details(plan[0]["report"])["dryRun"] is True and len(rows(env)) == 3
    (result,) = ScheduledKillOperator(task_id="kill", config=json.dumps(config)).execute(context())
    assert set(details(result["report"])["segments"]) == {s.id for s in old}
    assert set(rows(env)) == {recent[0].id}
    assert set(rows(env, "other")) == {other_old[0].id}  # not enabled for "other"

    with pytest.raises(AirflowFailException, match="bufferPeriod"):
        ScheduledKillOperator(task_id="kill", config={"kill": {"bufferPeriod": "a month"}}).execute(context())
    assert ApplyRetentionRulesOperator(task_id="rules", config={"applyRules": False}).execute(context()) == []


# ---------------------------------------------------------------------------------------------------- DagBag

_PROBE = r"""
import json, sys
import airflow
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "modules": sorted(sys.modules), "dags": {}}
for dag_id in ("druidflow_kill", "druidflow_retention"):
    dag = bag.dags.get(dag_id)
    if dag is None:
        continue
    out["dags"][dag_id] = {
        "tasks": {t.task_id: [type(t).__name__, sorted(t.upstream_task_ids)] for t in dag.tasks},
        "timetable": type(dag.timetable).__name__,
        "cron": getattr(dag.timetable, "expression", None),
        "allowed_run_types": sorted(str(getattr(r, "value", r)) for r in (dag.allowed_run_types or [])),
        "params": {k: dag.params.get_param(k).value for k in dag.params},
        "max_active_runs": dag.max_active_runs,
    }
print(json.dumps(out))
"""

IO_MODULES = ("druidflow.tasks", "druidflow.metadata.store", "druidflow.locks", "druidflow.storage", "druidflow.retention",
              "pyarrow", "boto3")


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(DAGS_FOLDER)],
        env=airflow_env(tmp_path_factory.mktemp("dagbag")),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_dags_parse_without_engine_io(parsed):
    assert parsed["import_errors"] == {}
    assert set(parsed["dags"]) == {"druidflow_kill", "druidflow_retention"}
    assert [m for m in parsed["modules"] if m.startswith(IO_MODULES)] == []


def test_druidflow_kill_is_manual_only_and_a_dry_run_by_default(parsed):
    dag = parsed["dags"]["druidflow_kill"]
    assert dag["tasks"] == {"kill": ["DruidKillOperator", []]}
    assert dag["timetable"] == "NullTimetable"
    assert dag["allowed_run_types"] == ["manual"]
    assert dag["params"]["confirm"] is False and dag["params"]["batch_size"] == 100
    assert {"data_source", "interval", "versions", "limit", "max_used_status_last_updated_time", "spec"} <= set(dag["params"])


def test_druidflow_retention_runs_daily_rules_then_kill(parsed):
    dag = parsed["dags"]["druidflow_retention"]
    assert dag["tasks"] == {
        "apply_rules": ["ApplyRetentionRulesOperator", []],
        "kill_unused": ["ScheduledKillOperator", ["apply_rules"]],
    }
    assert dag["timetable"] == "CronTriggerTimetable" and dag["cron"] == "0 0 * * *" and dag["max_active_runs"] == 1
    assert dag["params"] == {"dry_run": False}


# ---------------------------------------------------------------------------------------------------- e2e


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def cluster(request, tmp_path_factory) -> Iterator:
    """A running Airflow whose DB also holds Druidflow's tables; only druidflow_kill is in the DAG folder at first."""
    from tests.airflow.cluster import druidflow_cluster

    home = tmp_path_factory.mktemp(f"airflow-kill-{request.param}")
    retention = json.dumps({"kill": {"dataSources": {"e2e_wiki": {"enabled": True}}}})
    dag_files = {"druidflow_kill.py": (DAGS_FOLDER / "druidflow_kill.py").read_text()}
    with druidflow_cluster(request, home, dag_files, {"AIRFLOW_VAR_DRUIDFLOW_RETENTION": retention}) as started:
        yield started


def _cluster_runtime(cluster) -> Runtime:
    return Runtime.from_urls(cluster.db_url, str(cluster.deep_storage), cluster.home / "test-work", migrate=False)


@pytest.mark.e2e
@pytest.mark.slow
def test_druidflow_kill_under_a_real_scheduler_dry_runs_then_deletes_when_confirmed(cluster):
    rt = _cluster_runtime(cluster)
    ds = "e2e_kill"
    segments = seed(rt, [day(1), day(2)], ds=ds)
    (used,) = seed(rt, [day(1)], version=V2, ds=ds)
    unuse(rt, segments)
    cluster.wait_for_dag("druidflow_kill")
    conf = {"data_source": ds, "interval": "2024-01-01/2024-02-01"}

    run_id = cluster.trigger("druidflow_kill", conf)
    assert cluster.wait_for_run("druidflow_kill", run_id) == "success", cluster.task_logs("druidflow_kill", run_id)
    plan = details(cluster.xcom("druidflow_kill", run_id, "kill"))
    assert plan["dryRun"] is True and set(plan["segments"]) == {s.id for s in segments}
    assert len(rows(rt, ds)) == 3 and len(files(rt, ds)) == 3
    assert "DRY RUN" in cluster.task_logs("druidflow_kill", run_id)

    run_id = cluster.trigger("druidflow_kill", {**conf, "confirm": True})
    assert cluster.wait_for_run("druidflow_kill", run_id) == "success", cluster.task_logs("druidflow_kill", run_id)
    report = details(cluster.xcom("druidflow_kill", run_id, "kill"))
    assert report["dryRun"] is False and report["segments"] == plan["segments"] and report["files"] == plan["files"]
    assert set(rows(rt, ds)) == {used.id} and files(rt, ds) == {rt.storage.load_path(used.load_spec)}
    assert rt.store.get_task(report["taskId"]).report["killUnusedSegments"]["payload"]["numSegmentsKilled"] == 2


@pytest.mark.e2e
@pytest.mark.slow
def test_druidflow_retention_under_a_real_scheduler_applies_rules_and_kills_where_enabled(cluster):
    from druidflow import retention
    from druidflow.intervals import Interval

    rt = _cluster_runtime(cluster)
    today = now_ms() - now_ms() % MS_DAY
    kept = seed(rt, [Interval(today - MS_DAY, today)], ds="e2e_wiki")
    dropped = seed(rt, [day(1)], ds="e2e_wiki")
    long_unused = seed(rt, [day(2)], ds="e2e_wiki")
    not_enabled = seed(rt, [day(3)], ds="e2e_other")
    unuse(rt, long_unused)
    _age(rt, long_unused, 40)
    unuse(rt, not_enabled)
    _age(rt, not_enabled, 40)
    retention.set_rules(rt.store, "e2e_wiki", [{"type": "loadByPeriod", "period": "P30D"}, {"type": "dropForever"}])

    shutil.copy(DAGS_FOLDER / "druidflow_retention.py", cluster.dags_folder / "druidflow_retention.py")
    cluster.wait_for_dag("druidflow_retention")
    # @daily with catchup off: the scheduler starts the latest daily run on its own.
    deadline = time.monotonic() + 60
    runs = []
    while time.monotonic() < deadline and not runs:
        runs = cluster.dag_runs("druidflow_retention")
        time.sleep(1)
    assert [r["run_type"] for r in runs] == ["scheduled"], runs
    run_id = runs[0]["dag_run_id"]
    assert cluster.wait_for_run("druidflow_retention", run_id) == "success", cluster.task_logs("druidflow_retention", run_id)

    applied = cluster.xcom("druidflow_retention", run_id, "apply_rules")
    assert {r["dataSource"]: r["markedUnused"] for r in applied} == {"e2e_wiki": 1}
    killed = cluster.xcom("druidflow_retention", run_id, "kill_unused")
    assert [(k["dataSource"], details(k["report"])["segments"]) for k in killed] == [("e2e_wiki", [long_unused[0].id])]
    assert details(killed[0]["report"])["skipped"]["withinBufferPeriod"]["examples"] == [dropped[0].id]
    left = rows(rt, "e2e_wiki")
    assert set(left) == {kept[0].id, dropped[0].id} and left[kept[0].id]["used"] and not left[dropped[0].id]["used"]
    assert set(rows(rt, "e2e_other")) == {not_enabled[0].id}
