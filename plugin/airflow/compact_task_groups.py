"""One line to put Druid's whole ``compact`` workflow into a DAG.

.. code-block:: python

    from druidflow.airflow.compact_task_groups import compact_task_group

    with DAG("compact_wikipedia_monthly", schedule="@monthly", ...):
        compact_task_group({"type": "compact", "dataSource": "wikipedia",
                            "interval": "{{ data_interval_start | ds }}/{{ data_interval_end | ds }}"})
"""

from __future__ import annotations

from typing import Any

from druidflow.airflow.hooks import DeepStorageHook, DruidflowMetadataHook


def compact_task_group(
    spec: dict[str, Any] | str | None = None,
    *,
    group_id: str = "compact",
    metadata_conn_id: str = DruidflowMetadataHook.default_conn_name,
    deep_storage_conn_id: str = DeepStorageHook.default_conn_name,
    work_dir: str | None = None,
    lock_timeout_s: float = 0,
    outlets: list[Any] | None = None,
    pool: str | None = None,
    max_parallel_builds: int | None = None,
    tooltip: str = "Druid compact task: submit, lock, plan, build (mapped), publish, release",
):
    """A TaskGroup running one Druid ``compact`` task: submit >> acquire_locks >> plan >> build_segments (one mapped
    instance per output time chunk) >> publish, with release_locks as the teardown of acquire_locks.

    :param spec: the compact task JSON (a dict, JSON text, a Jinja template, or a ``.json`` path relative to the DAG
        folder); ``None`` takes it from the run's trigger form (the ``druidflow_compact`` params).
    :param group_id: the TaskGroup id.
    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage.
    :param work_dir: local scratch directory (default: a temporary directory per step).
    :param lock_timeout_s: seconds acquire_locks waits in-process before handing the slot back and retrying.
    :param outlets: outlets of the publish task (default: the ``druidflow`` asset alias).
    :param pool: Airflow pool for every step.
    :param max_parallel_builds: at most this many build instances of one run at a time (``None``: no limit).
    :param tooltip: the TaskGroup's tooltip.
    """
    from airflow.sdk import TaskGroup

    from druidflow.operators.compact import (
        CompactAcquireLocksOperator,
        CompactBuildSegmentsOperator,
        CompactPlanOperator,
        CompactPublishOperator,
        CompactSubmitOperator,
    )
    from druidflow.operators.index import ReleaseLocksOperator

    common: dict[str, Any] = {
        "metadata_conn_id": metadata_conn_id,
        "deep_storage_conn_id": deep_storage_conn_id,
        "work_dir": work_dir,
    }
    if pool:
        common["pool"] = pool

    with TaskGroup(group_id=group_id, tooltip=tooltip) as group:
        submit = CompactSubmitOperator(task_id="submit", spec=spec, **common)
        acquire = CompactAcquireLocksOperator(
            task_id="acquire_locks", compact_task=submit.output, lock_timeout_s=lock_timeout_s, **common
        )
        plan = CompactPlanOperator(task_id="plan", compact_task=submit.output, **common)
        build = CompactBuildSegmentsOperator.partial(
            task_id="build_segments",
            compact_task=submit.output,
            plan=plan.output["plan"],
            max_active_tis_per_dagrun=max_parallel_builds,
            **common,
        ).expand(build_unit=plan.output)
        publish_kwargs: dict[str, Any] = dict(common)
        if outlets is not None:
            publish_kwargs["outlets"] = outlets
        publish = CompactPublishOperator(
            task_id="publish", compact_task=submit.output, plan=plan.output["plan"], build_results=build.output, **publish_kwargs
        )
        release = ReleaseLocksOperator(task_id="release_locks", index_task=submit.output, **common)

        submit >> acquire >> plan >> build >> publish >> release
        release.as_teardown(setups=acquire)
    return group
