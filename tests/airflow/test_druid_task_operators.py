"""The generic protocol operators driving the new task types in-process, with JSON hand-offs as XComs do."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import AssetAlias
from airflow.sdk.exceptions import AirflowFailException

from druidflow.operators.base import SpecSubmitOperator
from druidflow.operators.druid_task import (
    DruidTaskAcquireLocksOperator,
    DruidTaskBuildOperator,
    DruidTaskPlanOperator,
    DruidTaskPublishOperator,
    DruidTaskReleaseOperator,
)
from tests.airflow.test_operators import context, xcom
from tests.tasks.test_merge import METRICS, index_spec, rows


@pytest.fixture
def env(monkeypatch, sqlite_url, tmp_path):
    from druidflow.tasks.runtime import Runtime

    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")
    monkeypatch.setenv("AIRFLOW_CONN_DRUIDFLOW_METADATA", sqlite_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE",
        json.dumps({"conn_type": "druidflow_deep_storage", "extra": {"uri": str(tmp_path / "deep")}}),
    )
    return rt


def run_steps(params, task_type, form):
    task = xcom(SpecSubmitOperator(task_id="s", druid_task_type=task_type, trigger_form=form).execute(context(params=params)))
    locks = xcom(DruidTaskAcquireLocksOperator(task_id="a", druid_task=task).execute(context()))
    plan_ctx = context()
    units = xcom(DruidTaskPlanOperator(task_id="p", druid_task=task).execute(plan_ctx))
    plan = plan_ctx["ti"].pushed["plan"]
    builds = [DruidTaskBuildOperator(task_id="b", druid_task=task, plan=plan, build_unit=u) for u in units]
    results = [xcom(b.execute(context())) for b in builds]
    pub_ctx = context()
    report = xcom(DruidTaskPublishOperator(task_id="pub", druid_task=task, plan=plan, build_results=results).execute(pub_ctx))
    released = DruidTaskReleaseOperator(task_id="r", druid_task=task).execute(context())
    return {"task": task, "locks": locks, "labels": [b.build_unit_label for b in builds], "report": report,
            "released": released, "events": pub_ctx["outlet_events"][AssetAlias("druidflow")].asset_alias_events}


def test_same_interval_merge_from_its_trigger_form(env):
    from druidflow.tasks import index

    index.run(index_spec(rows()), env)
    params = {"data_source": "m", "interval": "2024-01-01/2024-01-04", "aggregations": METRICS}
    out = run_steps(params, "same_interval_merge", "druidflow.airflow.merge_form:SAME_INTERVAL_MERGE_FORM")
    assert [lk["priority"] for lk in out["locks"]] == [25]
    assert out["labels"] == ["2024-01-01/2024-01-04"]
    [segment] = env.store.used_segments("m")
    assert out["events"][0].extra["segments"] == [segment.id]
    assert out["released"]["status"] == "SUCCESS"


def test_convert_from_its_trigger_form_labels_one_build_per_segment(env):
    from druidflow.tasks import index

    index.run(index_spec(rows()), env)
    params = {"data_source": "m", "interval": "2024-01-01/2024-01-04", "force": True, "index_spec": {"dimensionCompression": "zstd"}}
    out = run_steps(params, "convert_segment", "druidflow.airflow.convert_form:CONVERT_FORM")
    assert out["labels"] == ["2024-01-01/2024-01-02#0", "2024-01-02/2024-01-03#0", "2024-01-03/2024-01-04#0"]
    assert all(s.version.endswith("_converted") for s in env.store.used_segments("m"))
    assert out["report"]["status"] == "SUCCESS"


def test_a_spec_of_another_type_is_refused_by_a_typed_workflow(env):
    op = SpecSubmitOperator(task_id="s", spec={"type": "kill", "dataSource": "m", "interval": "2024-01-01/P1D"},
                            druid_task_type="merge")
    with pytest.raises(AirflowFailException, match="this workflow runs merge tasks"):
        op.execute(context())


def test_an_append_form_error_names_the_field(env):
    op = SpecSubmitOperator(task_id="s", druid_task_type="append", trigger_form="druidflow.airflow.merge_form:APPEND_FORM")
    with pytest.raises(AirflowFailException, match="Trigger form field 'segments'"):
        op.execute(context(params={"data_source": "m"}))


def test_build_labels_name_the_shard_of_a_hashed_unit():
    from druidflow.operators.druid_task import build_unit_label

    unit = {"taskId": "t", "chunks": [{"interval": "2024-01-02T00:00:00.000Z/2024-01-03T00:00:00.000Z", "version": "v",
                                       "shards": [{"type": "hashed", "partitionNum": 1, "numPartitions": 3}]}]}
    assert build_unit_label(unit) == "2024-01-02/2024-01-03#1/3"
    op = DruidTaskBuildOperator(task_id="b", druid_task={"id": "x"}, build_unit=unit)
    assert op.build_unit_label == "2024-01-02/2024-01-03#1/3" and op.retries == 2
