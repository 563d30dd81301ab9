"""Operators for the steps of Druid's ``index`` task, one Airflow task per step.

The workflow (built in one line by :func:`druidflow.airflow.task_groups.index_task_group`)::

    submit >> acquire_locks (setup) >> determine_partitions >> build_segments (mapped) >> publish
           >> release_locks (teardown of acquire_locks)

* :class:`IndexSubmitOperator` parses and validates the task JSON and records the task; a bad spec fails here,
  before any lock is taken, with the field path in the message.
* :class:`IndexAcquireLocksOperator` takes the time-chunk locks (an Airflow *setup* task).
* :class:`IndexDeterminePartitionsOperator` plans the build units; its return value is the list of units, so that
  ``IndexBuildSegmentsOperator.partial(...).expand(build_unit=determine.output)`` runs one mapped instance per unit
  and the builds spread over the workers. The whole plan is pushed under the XCom key ``plan`` for publish.
* :class:`IndexBuildSegmentsOperator` builds and pushes one unit's segments.
* :class:`IndexPublishOperator` publishes every built segment in one transaction, returns the Druid task report
  (also stored in the tasks table by the engine) and emits an Asset event for ``druidflow://<dataSource>`` whose
  extra lists the published segment ids.
* :class:`ReleaseLocksOperator` releases the task's locks; as the *teardown* of acquire_locks it runs even when a
  step in between failed, and it marks a task that never published as FAILED.

XComs carry descriptors only (the task JSON, lock records, build units, segment payloads, the report), never rows.

While a step runs, a heartbeat thread renews the task's lock lease (:mod:`druidflow.airflow.heartbeat`); ``on_kill``
releases the locks, so a task killed from the UI or by ``execution_timeout`` does not keep its time chunks.

The shared step machinery (hooks, heartbeats, ``on_kill``, typed failures, the lock-wait policy) is
:class:`druidflow.operators.base.DruidflowStepOperator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from druidflow.operators.base import (
    ASSET_SCHEME,
    DEFAULT_ASSET_ALIAS,
    DruidflowStepOperator,
    SpecSubmitOperator,
    as_dict,
    datasource_asset,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "ASSET_SCHEME",
    "DEFAULT_ASSET_ALIAS",
    "IndexAcquireLocksOperator",
    "IndexBuildSegmentsOperator",
    "IndexDeterminePartitionsOperator",
    "IndexPublishOperator",
    "IndexSubmitOperator",
    "ReleaseLocksOperator",
    "build_unit_label",
    "datasource_asset",
]


class IndexSubmitOperator(SpecSubmitOperator):
    """Validate a Druid ``index`` task JSON and record the task; returns the task (with its id) for the next steps.

    With ``spec`` empty, the spec comes from the run's trigger form: the param ``spec`` (a whole task JSON) or the
    common fields (see :mod:`druidflow.airflow.index_form`). An invalid spec fails at once (no retry) with the
    field path, before anything is locked or written.

    :param spec: the Druid ``index`` task JSON: a dict, JSON text, or a path to a ``.json`` file (templated);
        ``None`` reads the trigger form from ``params``.
    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage (a directory or ``s3://``).
    :param work_dir: local scratch directory for intermediate files (default: a temporary directory).
    :param heartbeat_interval_s: seconds between lock-lease heartbeats while the step runs.
    """

    task_module = "druidflow.tasks.index"
    form_module = "druidflow.airflow.index_form"
    form_function = "index_spec_from_form"


class _IndexTaskStepOperator(DruidflowStepOperator):
    """A step that works on a submitted index task.

    :param index_task: the submitted task, i.e. the XCom of :class:`IndexSubmitOperator` (templated).
    """

    template_fields: Sequence[str] = ("index_task", "work_dir")

    def __init__(self, *, index_task: dict[str, Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index_task = index_task


class IndexAcquireLocksOperator(_IndexTaskStepOperator):
    """Take the time-chunk locks of an index task (use it as the workflow's *setup* task).

    A lock held by a task of equal or higher priority raises ``AirflowException``, so Airflow retries with
    exponential backoff (see the module docstring for why this is not deferrable); after the last retry the task
    fails with a message saying who to wait for. A lower-priority holder's lock is revoked. Returns the lock
    records.

    :param index_task: the submitted task, i.e. the XCom of :class:`IndexSubmitOperator` (templated).
    :param lock_timeout_s: seconds to wait in-process for the locks before giving the slot back and retrying later.
    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage (a directory or ``s3://``).
    :param work_dir: local scratch directory for intermediate files (default: a temporary directory).
    :param heartbeat_interval_s: seconds between lock-lease heartbeats while the step runs.
    """

    _step_name = "acquire_locks"
    _heartbeat = False  # nothing is held until the step returns

    def __init__(self, *, lock_timeout_s: float = 0, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 60)
        kwargs.setdefault("retry_delay", timedelta(seconds=10))
        kwargs.setdefault("retry_exponential_backoff", 2.0)
        kwargs.setdefault("max_retry_delay", timedelta(minutes=5))
        super().__init__(**kwargs)
        self.lock_timeout_s = lock_timeout_s

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from druidflow.tasks.index import acquire_locks

        task = self._parse_task()
        locks = self._run(context, lambda: acquire_locks(task, self.runtime, timeout_s=self.lock_timeout_s))
        payload = [lock.to_json() for lock in locks]
        if not payload:
            self.log.info("Druid task %s has no intervals yet; determine_partitions locks what it finds", task.task_id)
        for lock in payload:
            self.log.info("Locked %s %s (version %s, priority %s)", lock["dataSource"], lock["interval"], lock["version"], lock["priority"])
        return payload


class IndexDeterminePartitionsOperator(_IndexTaskStepOperator):
    """Plan an index task's segments: which time chunks and shards, as a list of build units.

    Returns the build units (one XCom list, so the build step maps over it) and pushes the whole plan under the
    XCom key ``plan`` for the publish step.

    :param index_task: the submitted task, i.e. the XCom of :class:`IndexSubmitOperator` (templated).
    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage (a directory or ``s3://``).
    :param work_dir: local scratch directory for intermediate files (default: a temporary directory).
    :param heartbeat_interval_s: seconds between lock-lease heartbeats while the step runs.
    """

    _step_name = "determine_partitions"

    def __init__(self, **kwargs: Any) -> None:
        # Without granularitySpec.intervals the chunks are known only here, so this step also takes the locks
        # and may meet a lock held by an equal-or-higher priority task: same retry policy as acquire_locks.
        kwargs.setdefault("retries", 60)
        kwargs.setdefault("retry_delay", timedelta(seconds=10))
        kwargs.setdefault("retry_exponential_backoff", 2.0)
        kwargs.setdefault("max_retry_delay", timedelta(minutes=5))
        super().__init__(**kwargs)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from druidflow.tasks.index import determine_partitions

        task = self._parse_task()
        plan = self._run(context, lambda: determine_partitions(task, self.runtime))
        units = [unit.model_dump() for unit in plan.build_units]
        context["ti"].xcom_push(key="plan", value=plan.model_dump())
        self.log.info("Druid task %s: %d build unit(s)", task.task_id, len(units))
        return units


class IndexBuildSegmentsOperator(_IndexTaskStepOperator):
    """Build one unit's segments and push their files to deep storage; returns the segment descriptors.

    Meant to be mapped, one instance per unit:
    ``IndexBuildSegmentsOperator.partial(task_id="build_segments", index_task=...).expand(build_unit=determine.output)``.
    Each mapped instance is labelled with its unit (``map_index_template``).

    :param index_task: the submitted task, i.e. the XCom of :class:`IndexSubmitOperator` (templated).
    :param build_unit: one build unit from :class:`IndexDeterminePartitionsOperator` (templated; usually mapped).
    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage (a directory or ``s3://``).
    :param work_dir: local scratch directory for intermediate files (default: a temporary directory).
    :param heartbeat_interval_s: seconds between lock-lease heartbeats while the step runs.
    """

    template_fields: Sequence[str] = ("index_task", "build_unit", "work_dir")
    _step_name = "build_segments"

    def __init__(self, *, build_unit: dict[str, Any] | str, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", "{{ task.build_unit_label }}")
        kwargs.setdefault("retries", 2)
        kwargs.setdefault("retry_delay", timedelta(seconds=15))
        super().__init__(**kwargs)
        self.build_unit = build_unit

    @property
    def build_unit_label(self) -> str:
        """A short label of the unit (its interval and shard), shown as the mapped instance's name."""
        try:
            unit = as_dict(self.build_unit, "build_unit")
        except AirflowException:
            return ""
        return build_unit_label(unit)

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.tasks.index import BuildUnit, build

        task = self._parse_task()
        unit = BuildUnit.parse(as_dict(self.build_unit, "build_unit"), "build_unit")
        result = self._run(context, lambda: build(task, unit, self.runtime))
        payload = result.model_dump()
        self.log.info(
            "Druid task %s built %d segment(s), %d row(s) processed, for %s",
            task.task_id, len(result.segments), result.row_stats.processed, unit.label,
        )
        return payload


def build_unit_label(unit: Mapping[str, Any]) -> str:
    """The time chunks of a build unit dict (``BuildUnit.label``), shortened for ``map_index_template``."""
    chunks = unit.get("chunks") or []
    intervals = [str(c.get("interval", "")) for c in chunks if isinstance(c, Mapping)]
    return ",".join(iv.replace("T00:00:00.000Z", "").replace(".000Z", "Z") for iv in intervals) or "?"


class IndexPublishOperator(_IndexTaskStepOperator):
    """Publish every built segment in one transaction and return the Druid task report.

    Emits an Asset event for ``druidflow://<dataSource>`` whose extra holds the dataSource, the task id and the
    published segment ids, so downstream DAGs can be scheduled on new data (``schedule=[Asset("druidflow://wiki")]``).
    With no ``outlets`` given, the event goes through the asset alias ``druidflow`` (the dataSource is only known at
    run time); give ``outlets=[datasource_asset("wiki")]`` to declare the asset statically instead.

    :param index_task: the submitted task, i.e. the XCom of :class:`IndexSubmitOperator` (templated).
    :param plan: the plan, i.e. the ``plan`` XCom of :class:`IndexDeterminePartitionsOperator` (templated).
    :param build_results: the results of every build instance, i.e. ``build.output`` (templated).
    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage (a directory or ``s3://``).
    :param work_dir: local scratch directory for intermediate files (default: a temporary directory).
    :param heartbeat_interval_s: seconds between lock-lease heartbeats while the step runs.
    """

    template_fields: Sequence[str] = ("index_task", "plan", "build_results", "work_dir")
    _step_name = "publish"

    def __init__(self, *, plan: dict[str, Any] | str, build_results: Any, **kwargs: Any) -> None:
        from airflow.sdk import AssetAlias

        kwargs.setdefault("outlets", [AssetAlias(DEFAULT_ASSET_ALIAS)])
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=10))
        super().__init__(**kwargs)
        self.plan = plan
        self.build_results = build_results

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.tasks.index import BuildResult, IndexPlan, publish

        task = self._parse_task()
        plan = IndexPlan.parse(as_dict(self.plan, "plan"), "plan")
        # A LazyXComSequence over the mapped build instances (or a plain list when called directly).
        raw_results = [] if self.build_results is None else list(self.build_results)
        results = [BuildResult.parse(as_dict(r, "build_results[]"), "build_results") for r in raw_results if r]
        report = self._run(context, lambda: publish(task, plan, results, self.runtime))
        segment_ids = [segment.id for segment in report.segments]
        self.log.info("Druid task %s published %d segment(s) of %s", task.task_id, len(segment_ids), report.data_source)
        if segment_ids:
            self._emit_asset_event(context, report.data_source, task.task_id, segment_ids)
        return report.model_dump()

    def _emit_asset_event(self, context: Context, data_source: str, druid_task_id: str, segment_ids: list[str]) -> None:
        from airflow.sdk import Asset, AssetAlias

        asset = datasource_asset(data_source)
        extra = {"dataSource": data_source, "taskId": druid_task_id, "segments": segment_ids}
        outlet_events = context["outlet_events"]
        for outlet in self.outlets:
            if isinstance(outlet, AssetAlias):
                outlet_events[outlet].add(asset, extra=extra)
            elif isinstance(outlet, Asset) and outlet.uri == asset.uri:
                outlet_events[outlet].extra = extra


class ReleaseLocksOperator(_IndexTaskStepOperator):
    """Release a Druid task's locks; as the workflow's *teardown* it runs even when a step failed.

    A task that reaches this point without having published (a step failed, or the run was stopped) is marked
    FAILED in the tasks table, so it never stays RUNNING. Releasing is idempotent.

    :param index_task: the submitted task, i.e. the XCom of :class:`IndexSubmitOperator`, or its id (templated).
    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage (a directory or ``s3://``).
    :param work_dir: local scratch directory for intermediate files (default: a temporary directory).
    :param heartbeat_interval_s: seconds between lock-lease heartbeats while the step runs.
    """

    _step_name = "release_locks"
    _heartbeat = False

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=5))
        super().__init__(**kwargs)

    def _task_dict(self) -> dict[str, Any]:
        if isinstance(self.index_task, str) and not self.index_task.lstrip().startswith("{"):
            return {"id": self.index_task}
        return super()._task_dict()

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.tasks.index import fail, release

        druid_task_id = self._druid_task_id()
        if not druid_task_id:
            raise AirflowFailException("release_locks: index_task carries no task id")
        rt = self.runtime
        status = _task_status(rt.store.get_task(druid_task_id))
        if status == "RUNNING":
            fail(druid_task_id, "The Airflow run ended before the task published (a step failed or was stopped).", rt)
            status = "FAILED"
        self._run(context, lambda: release(druid_task_id, rt))
        self.log.info("Released the locks of Druid task %s (status %s)", druid_task_id, status)
        return {"id": druid_task_id, "status": status}


def _task_status(record: Any) -> str | None:
    if record is None:
        return None
    if isinstance(record, Mapping):
        return record.get("status")
    return getattr(record, "status", None)
