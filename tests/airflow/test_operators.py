"""The index step operators, run in-process against real SQLite/PostgreSQL and real Parquet files.

No scheduler here (see test_e2e.py for that): each operator's ``execute`` is called with a minimal context, the
way a worker would, and the hand-offs between steps go through JSON exactly as XComs do.
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import AssetAlias
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowRescheduleException

from druidflow.exceptions import LockRevokedError, LockUnavailableError, SpecError, StorageError
from druidflow.locks import TaskLockbox
from druidflow.operators.index import (
    IndexAcquireLocksOperator,
    IndexBuildSegmentsOperator,
    IndexDeterminePartitionsOperator,
    IndexPublishOperator,
    IndexSubmitOperator,
    ReleaseLocksOperator,
    build_unit_label,
    datasource_asset,
)
from tests.airflow.operator_context import FakeTI, context, xcom

REPO = Path(__file__).resolve().parents[2]
OPERATORS = [
    IndexSubmitOperator,
    IndexAcquireLocksOperator,
    IndexDeterminePartitionsOperator,
    IndexBuildSegmentsOperator,
    IndexPublishOperator,
    ReleaseLocksOperator,
]

ROWS = [
    {"ts": "2024-01-01T01:00:00Z", "d": "a", "v": 1},
    {"ts": "2024-01-01T01:30:00Z", "d": "a", "v": 2},
    {"ts": "2024-01-02T05:00:00Z", "d": "b", "v": 3},
    {"ts": "2024-01-03T07:00:00Z", "d": "c", "v": 4},
]


def spec_for(input_dir: Path, *, intervals=("2024-01-01/2024-01-04",), priority=None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "events",
                "timestampSpec": {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["d"]},
                "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "v", "fieldName": "v"}],
                "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "rollup": True},
            },
            "ioConfig": {
                "type": "index",
                "inputSource": {"type": "local", "baseDir": str(input_dir), "filter": "*.json"},
                "inputFormat": {"type": "json"},
            },
        },
    }
    if intervals is not None:
        spec["spec"]["dataSchema"]["granularitySpec"]["intervals"] = list(intervals)
    if priority is not None:
        spec["context"] = {"priority": priority}
    return spec


@pytest.fixture
def env(monkeypatch, db_url, tmp_path):
    """Connections for a migrated metadata DB and a local deep storage; an input directory with ROWS."""
    from druidflow.metadata.store import MetadataStore

    store = MetadataStore(db_url)
    store.migrate()
    monkeypatch.setenv("AIRFLOW_CONN_DRUIDFLOW_METADATA", db_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE",
        json.dumps({"conn_type": "druidflow_deep_storage", "extra": {"uri": str(tmp_path / "deep")}}),
    )
    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / "part-0.json").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return {"store": store, "inputs": inputs, "work": str(tmp_path / "work")}


def run_steps(env, spec, *, outlets=None):
    """submit -> acquire -> determine -> build (each unit) -> publish -> release, handing XComs over as JSON."""
    ctx = context()
    task = xcom(IndexSubmitOperator(task_id="submit", spec=spec, work_dir=env["work"]).execute(ctx))
    locks = xcom(IndexAcquireLocksOperator(task_id="acquire", index_task=task).execute(context()))
    det_ctx = context()
    units = xcom(IndexDeterminePartitionsOperator(task_id="determine", index_task=task, work_dir=env["work"]).execute(det_ctx))
    plan = det_ctx["ti"].pushed["plan"]
    results = [
        xcom(IndexBuildSegmentsOperator(task_id="build", index_task=task, build_unit=u, work_dir=env["work"]).execute(context()))
        for u in units
    ]
    pub_ctx = context()
    kwargs = {"outlets": outlets} if outlets is not None else {}
    report = xcom(IndexPublishOperator(task_id="publish", index_task=task, plan=plan, build_results=results, **kwargs).execute(pub_ctx))
    released = ReleaseLocksOperator(task_id="release", index_task=task).execute(context())
    return {"task": task, "locks": locks, "units": units, "plan": plan, "results": results, "report": report,
            "released": released, "outlet_events": pub_ctx["outlet_events"]}


# ----------------------------------------------------------------------------------------------- shape


@pytest.mark.parametrize("op", OPERATORS, ids=lambda o: o.__name__)
def test_template_fields_are_attributes(op):
    kwargs = {"task_id": "t", "index_task": {"id": "x"}, "build_unit": {}, "plan": {}, "build_results": []}
    params = set(inspect.signature(op.__init__).parameters)
    for cls in op.__mro__:
        params |= set(inspect.signature(cls.__init__).parameters) if cls.__module__ == op.__module__ else set()
    instance = op(**{k: v for k, v in kwargs.items() if k in params or k == "task_id"})
    for field in op.template_fields:
        assert hasattr(instance, field), field


def test_a_dry_run_argument_leaves_airflows_dry_run_method_working():
    from druidflow.operators.compact import AutoCompactionPlanOperator
    from druidflow.operators.kill import ApplyRetentionRulesOperator, DruidKillOperator

    ops = [DruidKillOperator(task_id="k", dry_run=True), ApplyRetentionRulesOperator(task_id="r", dry_run="true"),
           AutoCompactionPlanOperator(task_id="p", dry_run=True)]
    for op in ops:
        op.dry_run()  # BaseOperator's: renders the template fields; an attribute named dry_run used to shadow it
    assert all("dry_run_arg" in op.template_fields for op in ops[1:])  # templated where it was before, renamed
    assert ops[0].dry_run_arg is True and ops[1]._dry() and ops[2].dry_run_arg is True


def test_build_unit_label_shows_the_chunks():
    unit = {"taskId": "t", "chunks": [{"interval": "2024-01-02T00:00:00.000Z/2024-01-03T00:00:00.000Z", "version": "v"}]}
    assert build_unit_label(unit) == "2024-01-02/2024-01-03"
    op = IndexBuildSegmentsOperator(task_id="b", index_task={"id": "x"}, build_unit=unit)
    assert op.map_index_template == "{{ task.build_unit_label }}"
    assert op.build_unit_label == "2024-01-02/2024-01-03"


def test_datasource_asset_uri():
    assert datasource_asset("wikipedia").uri.rstrip("/") == "druidflow://wikipedia"
    assert datasource_asset("wiki pedia").name == "druidflow://wiki%20pedia"


# ----------------------------------------------------------------------------------------------- error mapping


def _step(try_number: int = 1, retries: int = 3):
    op = IndexBuildSegmentsOperator(task_id="b", index_task={"id": "t1"}, build_unit={}, retries=retries)
    op._heartbeat = False  # errors only; the heartbeat has its own tests
    return op, {"ti": FakeTI(try_number)}


def _raise(exc):
    def fn():
        raise exc

    return fn


def test_retryable_errors_let_airflow_retry():
    op, ctx = _step()
    with pytest.raises(AirflowException) as err:
        op._run(ctx, _raise(StorageError("S3 503 Slow Down")))
    assert not isinstance(err.value, AirflowFailException)
    assert "retrying" in str(err.value)


def test_lock_unavailable_fails_after_the_last_retry_with_what_to_do(monkeypatch):
    marked = []
    op, ctx = _step(try_number=4, retries=3)
    monkeypatch.setattr(op, "_mark_failed", lambda tid, msg: marked.append((tid, msg)))
    with pytest.raises(AirflowFailException, match="equal or higher priority.*priority") as err:
        op._run(ctx, _raise(LockUnavailableError("events 2024-01-01/2024-01-02 is locked")))
    assert "t1" in str(err.value)
    assert marked and marked[0][0] == "t1"


def test_a_bad_spec_fails_at_once_naming_the_field():
    op, ctx = _step()
    with pytest.raises(AirflowFailException, match=r"spec\.dataSchema\.dataSource.*Fix the field"):
        op._run(ctx, _raise(SpecError("spec.dataSchema.dataSource", "", "is required")))


def test_a_revoked_lock_fails_at_once_and_says_nothing_was_published(monkeypatch):
    op, ctx = _step()
    monkeypatch.setattr(op, "_mark_failed", lambda tid, msg: None)
    with pytest.raises(AirflowFailException, match="revoked by a higher-priority task.*Nothing of this task was published"):
        op._run(ctx, _raise(LockRevokedError("lock 2024-01-01/2024-01-02 was revoked")))


# ----------------------------------------------------------------------------------------------- the steps


def test_steps_publish_segments_report_and_asset_event(env):
    out = run_steps(env, spec_for(env["inputs"]))
    task_id = out["task"]["id"]
    assert [lk["interval"][:10] for lk in out["locks"]] == ["2024-01-01"]  # one condensed interval, 3 days
    assert [build_unit_label(u) for u in out["units"]] == ["2024-01-01/2024-01-02", "2024-01-02/2024-01-03", "2024-01-03/2024-01-04"]

    segments = env["store"].used_segments("events")
    assert len(segments) == 3 and sum(s.num_rows for s in segments) == 3  # rollup: 2 rows of day 1 become one
    report = out["report"]
    assert {s["interval"] for s in report["segments"]} == {str(s.interval) for s in segments}
    stats = report["reports"]["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert stats["processed"] == 4
    record = env["store"].get_task(task_id)
    assert record.status == "SUCCESS" and record.report["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]["processed"] == 4

    alias_events = out["outlet_events"][AssetAlias("druidflow")].asset_alias_events
    assert len(alias_events) == 1
    event = alias_events[0]
    assert event.dest_asset_key.uri.rstrip("/") == "druidflow://events"
    assert sorted(event.extra["segments"]) == sorted(s.id for s in segments)
    assert event.extra["dataSource"] == "events" and event.extra["taskId"] == task_id

    assert out["released"] == {"id": task_id, "status": "SUCCESS"}
    assert env["store"].get_task(task_id).status == "SUCCESS"
    from druidflow.locks import TaskLockbox

    assert [lk for lk in TaskLockbox(env["store"].engine).locks(task_id=task_id) if lk.active] == []


def test_a_static_asset_outlet_gets_the_event_extra(env):
    asset = datasource_asset("events")
    out = run_steps(env, spec_for(env["inputs"]), outlets=[asset])
    assert len(out["outlet_events"][asset].extra["segments"]) == 3


def test_without_intervals_determine_partitions_finds_and_locks_the_chunks(env):
    out = run_steps(env, spec_for(env["inputs"], intervals=None))
    assert out["locks"] == []  # nothing to lock before the data is read
    assert len(out["units"]) == 3
    assert len(env["store"].used_segments("events")) == 3


def test_form_errors_name_the_trigger_form_field(env):
    op = IndexSubmitOperator(task_id="submit")
    with pytest.raises(AirflowFailException, match="Trigger form field 'input'"):
        op.execute(context(params={"data_source": "events", "input": []}))
    with pytest.raises(AirflowFailException, match="(?i)trigger form field 'segment_granularity'"):
        op.execute(context(params={"data_source": "events", "input": [str(env["inputs"])], "segment_granularity": "FORTNIGHT"}))


def test_spec_from_the_trigger_form_runs(env):
    params = {"data_source": "events", "input": [str(env["inputs"])], "timestamp_column": "ts", "dimensions": ["d"],
              "metrics": [{"type": "count", "name": "count"}], "segment_granularity": "DAY", "query_granularity": "HOUR",
              "rollup": True, "intervals": ["2024-01-01/2024-01-04"], "append": False}
    task = IndexSubmitOperator(task_id="submit").execute(context(params=params))
    assert task["spec"]["dataSchema"]["dataSource"] == "events"
    assert env["store"].get_task(task["id"]).status == "RUNNING"


def test_a_higher_priority_holder_makes_acquire_retry(env):
    holder = xcom(IndexSubmitOperator(task_id="s", spec=spec_for(env["inputs"], priority=90)).execute(context()))
    IndexAcquireLocksOperator(task_id="a", index_task=holder).execute(context())
    waiter = xcom(IndexSubmitOperator(task_id="s", spec=spec_for(env["inputs"])).execute(context()))
    acquire = IndexAcquireLocksOperator(task_id="a", index_task=waiter)
    # The wait is a reschedule-mode sensor: the worker slot is given back and no retry is spent.
    assert acquire.mode == "reschedule" and acquire.exponential_backoff
    ctx = context()
    ctx["ti"].get_first_reschedule_date = lambda _ctx: None
    with pytest.raises(AirflowRescheduleException):
        acquire.execute(ctx)
    assert env["store"].get_task(waiter["id"]).status == "RUNNING"  # still waiting, not failed
    assert [lk for lk in TaskLockbox(env["store"].engine).locks(task_id=waiter["id"]) if lk.active] == []
    with pytest.raises(AirflowFailException, match="ended FAILED"):  # the holder stops without publishing
        ReleaseLocksOperator(task_id="r", index_task=holder).execute(context())
    assert env["store"].get_task(holder["id"]).status == "FAILED"
    assert acquire.poke(context()).xcom_value  # the next try takes the locks


def test_a_lower_priority_holder_is_revoked_and_cannot_publish(env):
    low = run_steps_until_build(env, spec_for(env["inputs"], priority=10))
    high = xcom(IndexSubmitOperator(task_id="s", spec=spec_for(env["inputs"], priority=90)).execute(context()))
    IndexAcquireLocksOperator(task_id="a", index_task=high).execute(context())  # revokes low's lock
    publish = IndexPublishOperator(task_id="p", index_task=low["task"], plan=low["plan"], build_results=low["results"])
    with pytest.raises(AirflowFailException, match="revoked"):
        publish.execute(context())
    assert env["store"].used_segments("events") == []
    assert env["store"].get_task(low["task"]["id"]).status == "FAILED"


def run_steps_until_build(env, spec):
    task = xcom(IndexSubmitOperator(task_id="s", spec=spec).execute(context()))
    IndexAcquireLocksOperator(task_id="a", index_task=task).execute(context())
    det_ctx = context()
    units = xcom(IndexDeterminePartitionsOperator(task_id="d", index_task=task, work_dir=env["work"]).execute(det_ctx))
    results = [
        xcom(IndexBuildSegmentsOperator(task_id="b", index_task=task, build_unit=u, work_dir=env["work"]).execute(context()))
        for u in units
    ]
    return {"task": task, "plan": det_ctx["ti"].pushed["plan"], "results": results}


def test_teardown_after_a_failed_build_releases_locks_and_marks_the_task_failed(env):
    from druidflow.locks import TaskLockbox

    task = xcom(IndexSubmitOperator(task_id="s", spec=spec_for(env["inputs"])).execute(context()))
    IndexAcquireLocksOperator(task_id="a", index_task=task).execute(context())
    det_ctx = context()
    units = xcom(IndexDeterminePartitionsOperator(task_id="d", index_task=task).execute(det_ctx))
    shutil.rmtree(env["inputs"])  # the input disappears between planning and building
    with pytest.raises(AirflowFailException, match="does not exist"):
        IndexBuildSegmentsOperator(task_id="b", index_task=task, build_unit=units[0], work_dir=env["work"]).execute(context())
    lockbox = TaskLockbox(env["store"].engine)
    assert [lk for lk in lockbox.locks(task_id=task["id"]) if lk.active]  # still held until the teardown

    with pytest.raises(AirflowFailException, match="ended FAILED.*locks are released"):
        ReleaseLocksOperator(task_id="r", index_task=task).execute(context())
    assert [lk for lk in lockbox.locks(task_id=task["id"]) if lk.active] == []
    assert env["store"].get_task(task["id"]).status == "FAILED"
    assert env["store"].used_segments("events") == []


def test_on_kill_releases_the_locks(env):
    from druidflow.locks import TaskLockbox

    task = xcom(IndexSubmitOperator(task_id="s", spec=spec_for(env["inputs"])).execute(context()))
    IndexAcquireLocksOperator(task_id="a", index_task=task).execute(context())
    lockbox = TaskLockbox(env["store"].engine)
    assert [lk for lk in lockbox.locks(task_id=task["id"]) if lk.active]
    IndexDeterminePartitionsOperator(task_id="d", index_task=task).on_kill()
    assert [lk for lk in lockbox.locks(task_id=task["id"]) if lk.active] == []


def test_steps_heartbeat_the_lease_while_they_run(env, monkeypatch):
    """With a 1.5 s lease, a 3 s step keeps its locks only because the step heartbeats."""
    from druidflow.locks import TaskLockbox

    conn = {"conn_type": "druidflow", "extra": {"sqlalchemy_url": str(env["store"].engine.url.render_as_string(hide_password=False)),
                                               "lock_lease_seconds": 1.5}}
    monkeypatch.setenv("AIRFLOW_CONN_SHORT_LEASE", json.dumps(conn))
    task = xcom(IndexSubmitOperator(task_id="s", spec=spec_for(env["inputs"]), metadata_conn_id="short_lease").execute(context()))
    IndexAcquireLocksOperator(task_id="a", index_task=task, metadata_conn_id="short_lease").execute(context())
    step = IndexDeterminePartitionsOperator(task_id="d", index_task=task, metadata_conn_id="short_lease", heartbeat_interval_s=0.3)
    step._run(context(), lambda: time.sleep(3))
    lockbox = TaskLockbox(env["store"].engine)
    assert [lk.state for lk in lockbox.locks(task_id=task["id"])] == ["active"]
    time.sleep(2)  # no step running: nobody beats, the lease runs out
    assert [lk.active for lk in lockbox.locks(task_id=task["id"])] == [False]
