"""One line to put Druid's whole ``index`` workflow into a DAG.

.. code-block:: python

    from druidflow.airflow.task_groups import index_task_group

    with DAG("load_wikipedia", schedule="@daily", ...):
        extract >> index_task_group("specs/wikipedia_index.json") >> notify
"""

from __future__ import annotations

from typing import Any

from druidflow.airflow.hooks import DeepStorageHook, DruidflowMetadataHook


def index_task_group(
    spec: dict[str, Any] | str | None = None,
    *,
    group_id: str = "druidflow_index",
    metadata_conn_id: str = DruidflowMetadataHook.default_conn_name,
    deep_storage_conn_id: str = DeepStorageHook.default_conn_name,
    work_dir: str | None = None,
    lock_timeout_s: float = 0,
    outlets: list[Any] | None = None,
    pool: str | None = None,
    max_parallel_builds: int | None = None,
    tooltip: str = "Druid index task: submit, lock, plan, build (mapped), publish, release",
):
    """A TaskGroup running one Druid ``index`` task: submit >> acquire_locks >> determine_partitions >>
    build_segments (one mapped instance per build unit) >> publish, with release_locks as the teardown of
    acquire_locks so locks are released even when a step fails.

    Call it inside a ``with DAG(...)`` block; it returns the TaskGroup, so ``a >> index_task_group(...) >> b`` works.

    :param spec: the Druid index task JSON: a dict, JSON text, a Jinja template, or a path to a ``.json`` file
        relative to the DAG folder; ``None`` takes it from the run's trigger form (the ``druidflow_index`` params).
    :param group_id: the TaskGroup id (task ids become ``<group_id>.submit`` etc.).
    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage (a directory or ``s3://``).
    :param work_dir: local scratch directory for intermediate files (default: a temporary directory per step).
    :param lock_timeout_s: seconds acquire_locks waits in-process before handing the slot back and retrying.
    :param outlets: outlets of the publish task; default: the ``druidflow`` asset alias, through which the
        ``druidflow://<dataSource>`` Asset event is emitted.
    :param pool: Airflow pool for every step (e.g. to bound concurrent builds).
    :param max_parallel_builds: at most this many build instances of one run at a time (``None``: no limit).
    :param tooltip: the TaskGroup's tooltip in the UI.
    """
    from airflow.sdk import TaskGroup

    from druidflow.operators.index import (
        IndexAcquireLocksOperator,
        IndexBuildSegmentsOperator,
        IndexDeterminePartitionsOperator,
        IndexPublishOperator,
        IndexSubmitOperator,
        ReleaseLocksOperator,
    )

    common: dict[str, Any] = {
        "metadata_conn_id": metadata_conn_id,
        "deep_storage_conn_id": deep_storage_conn_id,
        "work_dir": work_dir,
    }
    if pool:
        common["pool"] = pool

    with TaskGroup(group_id=group_id, tooltip=tooltip) as group:
        submit = IndexSubmitOperator(task_id="submit", spec=spec, **common)
        acquire = IndexAcquireLocksOperator(
            task_id="acquire_locks", index_task=submit.output, lock_timeout_s=lock_timeout_s, **common
        )
        determine = IndexDeterminePartitionsOperator(task_id="determine_partitions", index_task=submit.output, **common)
        build = IndexBuildSegmentsOperator.partial(
            task_id="build_segments",
            index_task=submit.output,
            max_active_tis_per_dagrun=max_parallel_builds,
            **common,
        ).expand(build_unit=determine.output)
        publish_kwargs: dict[str, Any] = dict(common)
        if outlets is not None:
            publish_kwargs["outlets"] = outlets
        publish = IndexPublishOperator(
            task_id="publish",
            # Input without rows (and without intervals) plans zero build units: the mapped build is then
            # skipped, and publish must still run to record the task as a success with no segments.
            trigger_rule="none_failed_min_one_success",
            index_task=submit.output,
            plan=determine.output["plan"],
            build_results=build.output,
            **publish_kwargs,
        )
        release = ReleaseLocksOperator(task_id="release_locks", index_task=submit.output, **common)

        submit >> acquire >> determine >> build >> publish >> release
        release.as_teardown(setups=acquire)
    return group
