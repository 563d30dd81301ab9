"""index_task_group: the whole index workflow in one line of a user's DAG."""

from __future__ import annotations

import json
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from druidflow.airflow.task_groups import index_task_group, parallel_task_group


def test_one_line_builds_the_workflow_and_chains_into_the_dag():
    with DAG("user_dag", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        group = EmptyOperator(task_id="extract") >> index_task_group({"type": "index"}, group_id="load") >> EmptyOperator(task_id="notify")
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"extract", "notify", "load.submit", "load.acquire_locks", "load.determine_partitions",
                          "load.build_segments", "load.publish", "load.release_locks"}
    assert tasks["load.submit"].upstream_task_ids == {"extract"}
    # Airflow leaves teardowns out of a group's leaves: what follows the group waits for publish, not release.
    assert tasks["notify"].upstream_task_ids == {"load.publish"}
    assert tasks["load.acquire_locks"].is_setup and tasks["load.release_locks"].is_teardown
    assert tasks["load.build_segments"].upstream_task_ids >= {"load.determine_partitions", "load.submit"}
    assert tasks["load.publish"].upstream_task_ids >= {"load.build_segments", "load.determine_partitions", "load.submit"}
    assert group is not None


def test_connection_ids_pool_and_parallelism_reach_every_step():
    with DAG("user_dag2", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        index_task_group({"type": "index"}, metadata_conn_id="meta", deep_storage_conn_id="deep", pool="druid",
                         max_parallel_builds=4)
    for task in dag.tasks:
        kwargs = task.partial_kwargs if hasattr(task, "partial_kwargs") else vars(task)
        assert kwargs["metadata_conn_id"] == "meta" and kwargs["deep_storage_conn_id"] == "deep", task.task_id
        assert (kwargs.get("pool") or getattr(task, "pool", None)) == "druid"
    build = next(t for t in dag.tasks if t.task_id.endswith("build_segments"))
    assert build.partial_kwargs["max_active_tis_per_dagrun"] == 4


def test_a_json_spec_file_is_rendered_per_run(tmp_path):
    spec = {"type": "index", "spec": {"dataSchema": {"dataSource": "wiki_{{ ds_nodash }}"}}}
    (tmp_path / "wiki.json").write_text(json.dumps(spec))
    with DAG("user_dag3", schedule=None, start_date=datetime(2024, 1, 1), template_searchpath=[str(tmp_path)]) as dag:
        index_task_group("wiki.json")
    submit = dag.get_task("druidflow_index.submit")
    submit.render_template_fields({"ds_nodash": "20240105"}, jinja_env=dag.get_template_env())
    rendered = submit.spec if isinstance(submit.spec, dict) else json.loads(submit.spec)
    assert rendered["spec"]["dataSchema"]["dataSource"] == "wiki_20240105"


def test_the_lean_parallel_group_chains_after_its_publish():
    with DAG("user_dag3", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        EmptyOperator(task_id="extract") >> parallel_task_group({"type": "index_parallel"}, group_id="p") >> EmptyOperator(task_id="notify")
    tasks = {t.task_id: t for t in dag.tasks}
    assert {n for n in tasks if n.startswith("p.")} == {
        "p.submit_lock_split", "p.scan", "p.decide_partitions", "p.partial_segments", "p.plan_merges", "p.merge_segments",
        "p.publish_release", "p.published"}
    assert tasks["p.submit_lock_split"].is_setup and tasks["p.publish_release"].is_teardown
    assert tasks["p.submit_lock_split"].upstream_task_ids == {"extract"}
    # publish_release is a teardown, which Airflow leaves out of the group's leaves: notify waits for "published".
    assert tasks["notify"].upstream_task_ids == {"p.published"}
    assert tasks["p.published"].upstream_task_ids == {"p.publish_release"}


def test_the_classic_parallel_group_keeps_one_operator_per_step():
    with DAG("user_dag4", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        parallel_task_group({"type": "index_parallel"}, group_id="p", lean=False)
    assert {t.task_id for t in dag.tasks} == {
        "p.submit", "p.acquire_locks", "p.split_input", "p.scan", "p.decide_partitions", "p.partial_segments",
        "p.plan_merges", "p.merge_segments", "p.publish", "p.release_locks"}
