"""One line to put a whole Druid task workflow of any registered type into a DAG.

.. code-block:: python

    from druidflow.airflow.task_groups import druid_task_group, index_task_group

    with DAG("load_wikipedia", schedule="@daily", ...):
        extract >> index_task_group("specs/wikipedia_index.json") >> notify
        druid_task_group("merge", {"type": "merge", "dataSource": "wiki", "segments": [...], "aggregations": [...]})
"""

from __future__ import annotations

from typing import Any, Optional

from druidflow.airflow.hooks import DeepStorageHook, DruidflowMetadataHook

#: Per task type: the trigger form a spec-less run reads, and the plan step's task id.
_FORMS = {
    "index": "druidflow.airflow.index_form:INDEX_FORM",
    "compact": "druidflow.airflow.compact_form:COMPACT_FORM",
    "append": "druidflow.airflow.merge_form:APPEND_FORM",
    "merge": "druidflow.airflow.merge_form:MERGE_FORM",
    "same_interval_merge": "druidflow.airflow.merge_form:SAME_INTERVAL_MERGE_FORM",
    "convert_segment": "druidflow.airflow.convert_form:CONVERT_FORM",
    "index_parallel": "druidflow.airflow.parallel_form:PARALLEL_FORM",
    "index_hadoop": "druidflow.airflow.hadoop_form:HADOOP_FORM",
}
_PLAN_STEP = {"index": "determine_partitions"}


def druid_task_group(
    task_type: str,
    spec: dict[str, Any] | str | None = None,
    *,
    group_id: Optional[str] = None,
    metadata_conn_id: str = DruidflowMetadataHook.default_conn_name,
    deep_storage_conn_id: str = DeepStorageHook.default_conn_name,
    work_dir: str | None = None,
    lock_timeout_s: float = 0,
    outlets: list[Any] | None = None,
    pool: str | None = None,
    max_parallel_builds: int | None = None,
    build_retries: Optional[int] = None,
    trigger_form: Optional[str] = None,
    tooltip: Optional[str] = None,
):
    """A TaskGroup running one Druid task of ``task_type``: submit >> acquire_locks >> plan (``determine_partitions``
    for index) >> build_segments (one mapped instance per build unit, labelled by interval/shard, each with the build
    retries) >> publish, with release_locks as the teardown of acquire_locks so that locks are released even when a
    step fails, and a run stopped half-way ends failed.

    Call it inside a ``with DAG(...)`` block; it returns the TaskGroup, so ``a >> druid_task_group(...) >> b`` works.

    :param task_type: a registered task type (``index``, ``compact``, ``append``, ``merge``, ``same_interval_merge``,
        ``convert_segment``).
    :param spec: the task JSON: a dict, JSON text, a Jinja template, or a path to a ``.json`` file relative to the DAG
        folder; ``None`` takes it from the run's trigger form (the type's form).
    :param group_id: the TaskGroup id (default: the task type).
    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage (a directory or ``s3://``).
    :param work_dir: local scratch directory for intermediate files (default: a temporary directory per step).
    :param lock_timeout_s: seconds acquire_locks waits in-process on each try before giving the slot back.
    :param outlets: outlets of the publish task; default: the ``druidflow`` asset alias.
    :param pool: Airflow pool for every step (e.g. to bound concurrent builds).
    :param max_parallel_builds: at most this many build instances of one run at a time (``None``: no limit).
    :param build_retries: retries of each mapped build instance (default: the build operator's, 2).
    :param trigger_form: ``"module:NAME"`` of the trigger form a spec-less run reads (default: the type's).
    :param tooltip: the TaskGroup's tooltip in the UI.
    """
    from airflow.sdk import TaskGroup, XComArg

    if task_type == "index_parallel":
        return parallel_task_group(
            spec, group_id=group_id or task_type, metadata_conn_id=metadata_conn_id, deep_storage_conn_id=deep_storage_conn_id,
            work_dir=work_dir, lock_timeout_s=lock_timeout_s, outlets=outlets, pool=pool, max_parallel_builds=max_parallel_builds,
            build_retries=build_retries, trigger_form=trigger_form, tooltip=tooltip,
        )
    from druidflow.operators.base import SpecSubmitOperator
    from druidflow.operators.druid_task import (
        BUILD_RETRIES,
        BUILD_RETRY_DELAY,
        DruidTaskAcquireLocksOperator,
        DruidTaskBuildOperator,
        DruidTaskPlanOperator,
        DruidTaskPublishOperator,
        DruidTaskReleaseOperator,
    )

    common: dict[str, Any] = {
        "metadata_conn_id": metadata_conn_id,
        "deep_storage_conn_id": deep_storage_conn_id,
        "work_dir": work_dir,
    }
    if pool:
        common["pool"] = pool
    tooltip = tooltip or f"Druid {task_type} task: submit, lock, plan, build (mapped), publish, release"

    with TaskGroup(group_id=group_id or task_type, tooltip=tooltip) as group:
        submit = SpecSubmitOperator(
            task_id="submit", spec=spec, druid_task_type=task_type, trigger_form=trigger_form or _FORMS.get(task_type), **common
        )
        task = submit.output
        acquire = DruidTaskAcquireLocksOperator(task_id="acquire_locks", druid_task=task, lock_timeout_s=lock_timeout_s, **common)
        plan = DruidTaskPlanOperator(task_id=_PLAN_STEP.get(task_type, "plan"), druid_task=task, **common)
        # .partial() takes no defaults from the operator's __init__: retries and labels are given here.
        build = DruidTaskBuildOperator.partial(
            task_id="build_segments",
            druid_task=task,
            plan=XComArg(plan, key="plan"),
            max_active_tis_per_dagrun=max_parallel_builds,
            retries=BUILD_RETRIES if build_retries is None else build_retries,
            retry_delay=BUILD_RETRY_DELAY,
            map_index_template="{{ task.build_unit_label }}",
            **common,
        ).expand(build_unit=plan.output)
        publish_kwargs: dict[str, Any] = dict(common)
        if outlets is not None:
            publish_kwargs["outlets"] = outlets
        publish = DruidTaskPublishOperator(
            task_id="publish",
            # A plan without build units (no rows, nothing to convert): the mapped build is skipped, and publish must
            # still run to record the task as a success.
            trigger_rule="none_failed_min_one_success",
            druid_task=task,
            plan=XComArg(plan, key="plan"),
            build_results=build.output,
            **publish_kwargs,
        )
        release = DruidTaskReleaseOperator(task_id="release_locks", druid_task=task, **common)

        submit >> acquire >> plan >> build >> publish >> release
        release.as_teardown(setups=acquire, on_failure_fail_dagrun=True)
    return group


def parallel_task_group(
    spec: dict[str, Any] | str | None = None,
    *,
    group_id: str = "index_parallel",
    metadata_conn_id: str = DruidflowMetadataHook.default_conn_name,
    deep_storage_conn_id: str = DeepStorageHook.default_conn_name,
    work_dir: str | None = None,
    lock_timeout_s: float = 0,
    outlets: list[Any] | None = None,
    pool: str | None = None,
    max_parallel_builds: int | None = None,
    build_retries: Optional[int] = None,
    trigger_form: Optional[str] = None,
    tooltip: Optional[str] = None,
    lean: bool = True,
):
    """The TaskGroup of one ``index_parallel`` task.

    Lean (the default): submit_lock_split (the setup: submit, acquire_locks and split_input in one step, deciding the
    partitions too when they need no statistics) >> scan (mapped per split, skipped when the partitioning needs no
    statistics) >> decide_partitions >> partial_segments (mapped per split) >> plan_merges >> merge_segments (mapped per
    (chunk, partition)) >> publish_release (the teardown: publishes when every merge finished, deletes the partial
    files and releases the locks) >> published (an EmptyOperator, so that what follows the group waits for the
    publish) — four serial control tasks instead of seven; see
    :mod:`druidflow.operators.parallel_lean`.

    ``lean=False``: one operator per step, submit >> acquire_locks >> split_input >> scan >> decide_partitions >>
    partial_segments >> plan_merges >> merge_segments >> publish, with release_locks (which also deletes the partial
    files) as the teardown.

    ``max_parallel_builds`` bounds each mapped phase's concurrent instances; ``build_retries`` their retries (default
    :data:`~druidflow.operators.parallel.SUB_TASK_RETRIES`, lowered by the spec's ``maxRetry``)."""
    from airflow.sdk import TaskGroup, XComArg

    from druidflow.operators.base import SpecSubmitOperator
    from druidflow.operators.druid_task import (
        DruidTaskAcquireLocksOperator,
        DruidTaskBuildOperator,
        DruidTaskPublishOperator,
    )
    from druidflow.operators.parallel import (
        SUB_TASK_RETRIES,
        SUB_TASK_RETRY_DELAY,
        ParallelDecideOperator,
        ParallelMergesOperator,
        ParallelPartialOperator,
        ParallelReleaseOperator,
        ParallelScanOperator,
        ParallelSplitOperator,
    )

    common: dict[str, Any] = {"metadata_conn_id": metadata_conn_id, "deep_storage_conn_id": deep_storage_conn_id, "work_dir": work_dir}
    if pool:
        common["pool"] = pool
    mapped: dict[str, Any] = dict(
        common,
        max_active_tis_per_dagrun=max_parallel_builds,
        retries=SUB_TASK_RETRIES if build_retries is None else build_retries,
        retry_delay=SUB_TASK_RETRY_DELAY,
    )
    tooltip = tooltip or "Druid index_parallel task: split, partial segments per split, merge per (chunk, partition), publish"
    if lean:
        return _lean_parallel_group(
            spec, group_id=group_id, common=common, mapped=mapped, lock_timeout_s=lock_timeout_s, outlets=outlets,
            trigger_form=trigger_form, tooltip=tooltip,
        )
    with TaskGroup(group_id=group_id, tooltip=tooltip) as group:
        submit = SpecSubmitOperator(
            task_id="submit", spec=spec, druid_task_type="index_parallel", trigger_form=trigger_form or _FORMS["index_parallel"], **common
        )
        task = submit.output
        acquire = DruidTaskAcquireLocksOperator(task_id="acquire_locks", druid_task=task, lock_timeout_s=lock_timeout_s, **common)
        split = ParallelSplitOperator(task_id="split_input", druid_task=task, **common)
        scan = ParallelScanOperator.partial(
            task_id="scan", druid_task=task, plan=XComArg(split, key="plan"), map_index_template="{{ task.split_label }}", **mapped
        ).expand(split=split.output)
        decide = ParallelDecideOperator(task_id="decide_partitions", druid_task=task, plan=XComArg(split, key="plan"), scans=scan.output, **common)
        partial = ParallelPartialOperator.partial(
            task_id="partial_segments", druid_task=task, plan=XComArg(decide, key="plan"), map_index_template="{{ task.split_label }}", **mapped
        ).expand(split=decide.output)
        merges = ParallelMergesOperator(task_id="plan_merges", druid_task=task, plan=XComArg(decide, key="plan"), partials=partial.output, **common)
        merge = DruidTaskBuildOperator.partial(
            task_id="merge_segments",
            druid_task=task,
            plan=XComArg(merges, key="final_plan"),
            map_index_template="{{ task.build_unit_label }}",
            **mapped,
        ).expand(build_unit=merges.output)
        publish_kwargs: dict[str, Any] = dict(common)
        if outlets is not None:
            publish_kwargs["outlets"] = outlets
        publish = DruidTaskPublishOperator(
            task_id="publish",
            trigger_rule="none_failed_min_one_success",  # no rows at all: no merge, and the task still succeeds
            druid_task=task,
            plan=XComArg(merges, key="final_plan"),
            build_results=merge.output,
            **publish_kwargs,
        )
        release = ParallelReleaseOperator(task_id="release_locks", druid_task=task, **common)
        submit >> acquire >> split >> scan >> decide >> partial >> merges >> merge >> publish >> release
        release.as_teardown(setups=acquire, on_failure_fail_dagrun=True)
    return group


def _lean_parallel_group(
    spec: dict[str, Any] | str | None,
    *,
    group_id: str,
    common: dict[str, Any],
    mapped: dict[str, Any],
    lock_timeout_s: float,
    outlets: list[Any] | None,
    trigger_form: Optional[str],
    tooltip: str,
):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import TaskGroup, XComArg

    from druidflow.operators.druid_task import DruidTaskBuildOperator
    from druidflow.operators.parallel import ParallelMergesOperator, ParallelPartialOperator, ParallelScanOperator
    from druidflow.operators.parallel_lean import (
        ParallelLeanDecideOperator,
        ParallelPublishReleaseOperator,
        ParallelSubmitLockSplitOperator,
    )

    with TaskGroup(group_id=group_id, tooltip=tooltip) as group:
        prepare = ParallelSubmitLockSplitOperator(
            task_id="submit_lock_split", spec=spec, trigger_form=trigger_form or _FORMS["index_parallel"], lock_timeout_s=lock_timeout_s, **common
        )
        task = XComArg(prepare, key="druid_task")
        scan = ParallelScanOperator.partial(
            task_id="scan", druid_task=task, plan=XComArg(prepare, key="plan"), map_index_template="{{ task.split_label }}", **mapped
        ).expand(split=prepare.output)
        # decide runs when the scan was skipped too (trigger rule none_failed): no direct downstream of the setup.
        decide = ParallelLeanDecideOperator(task_id="decide_partitions", setup_task_id=prepare.task_id, scans=scan.output, **common)
        partial = ParallelPartialOperator.partial(
            task_id="partial_segments", druid_task=task, plan=XComArg(decide, key="plan"), map_index_template="{{ task.split_label }}", **mapped
        ).expand(split=decide.output)
        merges = ParallelMergesOperator(task_id="plan_merges", druid_task=task, plan=XComArg(decide, key="plan"), partials=partial.output, **common)
        merge = DruidTaskBuildOperator.partial(
            task_id="merge_segments", druid_task=task, plan=XComArg(merges, key="final_plan"), map_index_template="{{ task.build_unit_label }}", **mapped
        ).expand(build_unit=merges.output)
        finish_kwargs: dict[str, Any] = dict(common)
        if outlets is not None:
            finish_kwargs["outlets"] = outlets
        finish = ParallelPublishReleaseOperator(
            task_id="publish_release", druid_task=task, merges_task_id=merges.task_id, merge_task_id=merge.task_id, **finish_kwargs
        )
        # Airflow leaves a teardown out of a group's leaves; what follows the group must wait for the publish, so
        # the group ends with an EmptyOperator after it (the scheduler marks it done itself: no worker, no process).
        published = EmptyOperator(task_id="published")
        prepare >> scan >> decide >> partial >> merges >> merge >> finish >> published
        finish.as_teardown(setups=prepare, on_failure_fail_dagrun=True)
    return group


def index_task_group(spec: dict[str, Any] | str | None = None, *, group_id: str = "druidflow_index", **kwargs: Any):
    """:func:`druid_task_group` for ``index`` (group id ``druidflow_index`` by default)."""
    return druid_task_group("index", spec, group_id=group_id, **kwargs)


def compact_task_group(spec: dict[str, Any] | str | None = None, *, group_id: str = "compact", **kwargs: Any):
    """:func:`druid_task_group` for ``compact``."""
    return druid_task_group("compact", spec, group_id=group_id, **kwargs)
