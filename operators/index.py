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

Errors are typed. A :class:`~druidflow.exceptions.TerminalError` (bad spec, revoked lock, changed input, ...) raises
``AirflowFailException`` at once: no retry, a message that says what happened and what to do, and the task row is
marked FAILED. A :class:`~druidflow.exceptions.RetryableError` raises ``AirflowException`` so Airflow retries.

**A lock held by a task of equal or higher priority: retries with backoff, not deferral.** Druid leaves such a task
WAITING in its queue until the lock frees up. Here, ``IndexAcquireLocksOperator`` tries once (optionally waiting up
to ``lock_timeout_s`` in-process) and otherwise raises ``AirflowException``; its defaults are many retries with
exponential backoff (10 s doubling up to 5 min, 60 attempts, about 4.5 hours). We chose this over a deferrable
trigger because (1) between attempts the task holds no worker slot either (``up_for_retry`` is not running),
(2) it needs no triggerer and no async database driver (triggers cannot use Airflow's ORM and would need their own
async engine on our tables), (3) the waiting is visible as retries in the UI and bounded by ``retries``, which users
already know how to tune, and (4) a lock wait is minutes, not seconds, so the triggerer's fine-grained polling buys
nothing. A lower-priority holder does not cause a wait: the lockbox revokes its lock and the acquisition succeeds.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from druidflow.airflow.heartbeat import DEFAULT_INTERVAL_S, LeaseHeartbeat
from druidflow.airflow.hooks import DeepStorageHook, DruidflowMetadataHook
from druidflow.exceptions import (
    DruidflowError,
    LockRevokedError,
    LockUnavailableError,
    RetryableError,
    SpecError,
    TerminalError,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from druidflow.tasks.runtime import Runtime

T = TypeVar("T")

#: The alias through which publish emits ``druidflow://<dataSource>`` events when no outlet is given.
DEFAULT_ASSET_ALIAS = "druidflow"
#: Asset URI scheme of a Druidflow dataSource: ``druidflow://<dataSource>``.
ASSET_SCHEME = "druidflow"


def datasource_asset(data_source: str):
    """The Airflow Asset of a Druidflow dataSource, ``druidflow://<dataSource>`` (name and URI alike)."""
    from urllib.parse import quote

    from airflow.sdk import Asset

    uri = f"{ASSET_SCHEME}://{quote(data_source, safe='')}"
    return Asset(name=uri, uri=uri)


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    """A dict from an XCom/template value that may arrive as JSON text (non-native template rendering)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise AirflowFailException(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise AirflowFailException(f"{what} must be a JSON object, got {type(value).__name__}")
    return dict(value)


class _DruidflowStepOperator(BaseOperator):
    """Shared plumbing: hooks, the engine runtime, heartbeats and the error mapping.

    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage (a directory or ``s3://``).
    :param work_dir: local scratch directory for intermediate files (default: a temporary directory).
    :param heartbeat_interval_s: seconds between lock-lease heartbeats while the step runs.
    """

    ui_color = "#29b5e8"
    _step_name = "step"
    _heartbeat = True

    def __init__(
        self,
        *,
        metadata_conn_id: str = DruidflowMetadataHook.default_conn_name,
        deep_storage_conn_id: str = DeepStorageHook.default_conn_name,
        work_dir: str | None = None,
        heartbeat_interval_s: float = DEFAULT_INTERVAL_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if heartbeat_interval_s <= 0:
            raise ValueError(f"heartbeat_interval_s must be positive, got {heartbeat_interval_s!r}")
        self.metadata_conn_id = metadata_conn_id
        self.deep_storage_conn_id = deep_storage_conn_id
        self.work_dir = work_dir
        self.heartbeat_interval_s = heartbeat_interval_s

    @cached_property
    def metadata_hook(self) -> DruidflowMetadataHook:
        """Hook on the metadata Connection (its own engine; never Airflow's ORM)."""
        return DruidflowMetadataHook(metadata_conn_id=self.metadata_conn_id)

    @cached_property
    def deep_storage_hook(self) -> DeepStorageHook:
        """Hook on the deep storage Connection."""
        return DeepStorageHook(deep_storage_conn_id=self.deep_storage_conn_id)

    @cached_property
    def runtime(self) -> Runtime:
        """The engine's runtime: metadata store, lockbox, deep storage and scratch directory."""
        from druidflow.tasks.runtime import Runtime

        hook = self.metadata_hook
        work_dir = Path(self.work_dir) if self.work_dir else Path(tempfile.gettempdir()) / "druidflow-work"
        work_dir.mkdir(parents=True, exist_ok=True)
        return Runtime(store=hook.store, lockbox=hook.lockbox, storage=self.deep_storage_hook.storage, work_dir=work_dir)

    # -- the Druid task this step belongs to -------------------------------------------------------------------

    def _task_dict(self) -> dict[str, Any]:
        return _as_dict(getattr(self, "index_task"), "index_task")

    def _druid_task_id(self) -> str | None:
        try:
            return str(self._task_dict()["id"])
        except (AirflowException, KeyError, AttributeError):
            return None

    def _parse_task(self):
        from druidflow.tasks.index import IndexTask

        return IndexTask.parse(self._task_dict(), "index_task")

    # -- running a step ---------------------------------------------------------------------------------------

    def _run(self, context: Context, fn: Callable[[], T]) -> T:
        """Run one engine step with the lease heartbeat on, mapping Druidflow errors to Airflow's."""
        druid_task_id = self._druid_task_id()
        try:
            if not (self._heartbeat and druid_task_id):
                return fn()
            from druidflow.tasks.index import heartbeat

            rt = self.runtime
            with LeaseHeartbeat(
                lambda: heartbeat(druid_task_id, rt), interval_s=self.heartbeat_interval_s, name=druid_task_id
            ) as beat:
                result = fn()
            beat.check()  # a lock revoked mid-step makes the step's output worthless
            return result
        except DruidflowError as exc:
            raise self._airflow_error(exc, context, druid_task_id) from exc

    def _airflow_error(self, exc: DruidflowError, context: Context, druid_task_id: str | None) -> AirflowException:
        where = f"{self._step_name} of Druid task {druid_task_id}" if druid_task_id else self._step_name
        if isinstance(exc, RetryableError) and not self._is_last_attempt(context):
            self.log.warning("%s: %s (%s); Airflow will retry", where, exc, type(exc).__name__)
            return AirflowException(f"{where}: {exc} ({type(exc).__name__}; retrying)")
        if isinstance(exc, SpecError):
            message = (
                f"{where}: the task spec is invalid: {exc}. Fix the field '{exc.path}' and trigger a new run; "
                "nothing was locked or written."
            )
        elif isinstance(exc, LockRevokedError):
            message = (
                f"{where}: its lock was revoked by a higher-priority task ({exc}). Nothing of this task was "
                "published. Trigger a new run when the other task has finished (or give this one a higher "
                "'priority' in the task context)."
            )
        elif isinstance(exc, LockUnavailableError):
            message = (
                f"{where}: the time chunks are still locked by a task of equal or higher priority after "
                f"{self.retries} retries ({exc}). Trigger again later, raise this task's 'priority', or raise "
                "the operator's retries."
            )
        elif isinstance(exc, TerminalError):
            message = f"{where} failed: {exc} ({type(exc).__name__}; retrying cannot help)."
        else:  # PublishStateUnknownError and friends: neither retryable nor terminal by themselves
            return AirflowException(f"{where}: {exc} ({type(exc).__name__})")
        self._mark_failed(druid_task_id, message)
        return AirflowFailException(message)

    def _is_last_attempt(self, context: Context) -> bool:
        ti = context.get("ti") if context else None
        try_number = getattr(ti, "try_number", None)
        return try_number is not None and self.retries is not None and try_number > self.retries

    def _mark_failed(self, druid_task_id: str | None, message: str) -> None:
        """Record the task as FAILED in the tasks table and free its locks; never masks the original error."""
        if not druid_task_id:
            return
        try:
            from druidflow.tasks.index import fail

            fail(druid_task_id, message, self.runtime)
        except Exception:  # noqa: BLE001 - the step's own error is what the user must see
            self.log.exception("Could not mark Druid task %s as failed", druid_task_id)

    def on_kill(self) -> None:
        """Release the Druid task's locks: a killed step must not keep its time chunks locked."""
        druid_task_id = self._druid_task_id()
        if not druid_task_id:
            return
        try:
            from druidflow.tasks.index import release

            release(druid_task_id, self.runtime)
            self.log.info("Released the locks of Druid task %s", druid_task_id)
        except Exception:  # noqa: BLE001
            self.log.exception("Could not release the locks of Druid task %s", druid_task_id)


class IndexSubmitOperator(_DruidflowStepOperator):
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

    template_fields: Sequence[str] = ("spec",)
    template_ext: Sequence[str] = (".json",)
    template_fields_renderers = {"spec": "json"}
    _step_name = "submit"
    _heartbeat = False

    def __init__(self, *, spec: dict[str, Any] | str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("render_template_as_native_obj", True)
        super().__init__(**kwargs)
        self.spec = spec

    def _druid_task_id(self) -> str | None:
        return None

    def _from_form(self) -> bool:
        return self.spec is None or (isinstance(self.spec, str) and not self.spec.strip())

    def resolve_spec(self, context: Context) -> dict[str, Any]:
        """The task JSON this run submits (``spec``, else the trigger form)."""
        from druidflow.airflow.index_form import index_spec_from_form

        if self._from_form():
            try:
                return index_spec_from_form(dict(context.get("params") or {}))
            except SpecError as exc:
                raise AirflowFailException(
                    f"Trigger form field '{exc.path}' is invalid: {exc.reason} (got {exc.value!r}). "
                    "Fix it and trigger a new run; nothing was locked or written."
                ) from exc
        return _as_dict(self.spec, "spec")

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.airflow.index_form import form_field_for
        from druidflow.tasks.index import submit

        spec = self.resolve_spec(context)
        built_from_fields = self._from_form() and not (context.get("params") or {}).get("spec")
        try:
            task = self._run(context, lambda: submit(spec, self.runtime))
        except AirflowFailException as exc:
            cause = exc.__cause__
            field = form_field_for(cause.path) if built_from_fields and isinstance(cause, SpecError) else None
            if field:
                raise AirflowFailException(f"{exc} (trigger form field '{field}')") from cause
            raise
        self.log.info("Submitted Druid task %s on dataSource %s", task.task_id, task.data_source)
        return task.model_dump()


class _IndexTaskStepOperator(_DruidflowStepOperator):
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
            unit = _as_dict(self.build_unit, "build_unit")
        except AirflowException:
            return ""
        return build_unit_label(unit)

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.tasks.index import BuildUnit, build

        task = self._parse_task()
        unit = BuildUnit.parse(_as_dict(self.build_unit, "build_unit"), "build_unit")
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
        plan = IndexPlan.parse(_as_dict(self.plan, "plan"), "plan")
        # A LazyXComSequence over the mapped build instances (or a plain list when called directly).
        raw_results = [] if self.build_results is None else list(self.build_results)
        results = [BuildResult.parse(_as_dict(r, "build_results[]"), "build_results") for r in raw_results if r]
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
