"""One Airflow operator per step of the task protocol, driving any registered Druid task type.

The workflow (built in one line by :func:`druidflow.airflow.task_groups.druid_task_group`)::

    submit >> acquire_locks (setup) >> plan >> build (mapped, one instance per build unit) >> publish
           >> release_locks (teardown of acquire_locks)

* :class:`~druidflow.operators.base.SpecSubmitOperator` validates the task JSON (or the trigger form) and records it.
* :class:`DruidTaskAcquireLocksOperator` takes the locks the task type requests. While they are held by a task of
  equal or higher priority it waits in ``reschedule`` mode: no worker slot is held and no retry is spent.
* :class:`DruidTaskPlanOperator` plans under the lock; it returns the build units (the build maps over them) and
  pushes the whole plan under the XCom key ``plan``.
* :class:`DruidTaskBuildOperator` builds one unit; each mapped instance is labelled with its unit (interval/shard).
* :class:`DruidTaskPublishOperator` executes the publish plan in one transaction and emits an Asset event for
  ``druidflow://<dataSource>`` whose extra lists the published segment ids.
* :class:`DruidTaskReleaseOperator` releases the locks; as the teardown (with ``on_failure_fail_dagrun``) it runs even
  when a step failed or the run was marked failed, and ends as the Druid task ended, so the run's state is the
  task's outcome.

The task type is read from the submitted task JSON; each step looks its definition up in
:mod:`druidflow.tasks.registry` when it runs (never at DAG parse time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from druidflow.exceptions import LockUnavailableError
from druidflow.operators.base import DEFAULT_ASSET_ALIAS, DruidflowStepOperator, as_dict, datasource_asset

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context, XComArg
    from pydantic import JsonValue

#: Retries of a mapped build instance (given to ``.partial()`` explicitly: it does not run ``__init__`` defaults).
BUILD_RETRIES = 2
BUILD_RETRY_DELAY = timedelta(seconds=15)
#: How long acquire_locks waits for locks held by others before the run fails.
LOCK_WAIT_TIMEOUT = timedelta(hours=6)


def lock_wait_sensor_args(kwargs: dict[str, Any], lock_wait_timeout: timedelta | float, *, retries: int) -> dict[str, Any]:
    """A step that waits for locks is a reschedule-mode sensor: the worker slot is given back while it waits."""
    kwargs.setdefault("mode", "reschedule")
    kwargs.setdefault("poke_interval", 10)
    kwargs.setdefault("exponential_backoff", True)
    kwargs.setdefault("max_wait", timedelta(minutes=5))
    kwargs.setdefault("retries", retries)
    kwargs["timeout"] = lock_wait_timeout
    return kwargs


class DruidTaskStepOperator(DruidflowStepOperator):
    """A step that works on a submitted task of any registered type.

    :param druid_task: the submitted task, i.e. the XCom of the submit step (templated).
    """

    template_fields: Sequence[str] = ("druid_task", "work_dir")

    def __init__(self, *, druid_task: dict[str, Any] | str | XComArg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.druid_task = druid_task

    def _task_dict(self) -> dict[str, Any]:
        return as_dict(self.druid_task, "druid_task")

    def _parse_task(self):
        from druidflow.specs.tasks import parse_task

        return parse_task(self._task_dict(), "druid_task")

    def _definition(self, task: Any = None):
        from druidflow.tasks.registry import definition

        return definition((task or self._parse_task()).type)


class DruidTaskAcquireLocksOperator(DruidTaskStepOperator, BaseSensorOperator):
    """Take the locks a task requests (use it as the workflow's *setup* task); returns the lock records.

    Locks held by a task of equal or higher priority: the sensor gives its worker slot back and tries again after
    ``poke_interval`` (doubling up to ``max_wait``), spending no retry, until ``lock_wait_timeout``; then the run
    fails and the task is recorded FAILED. A lower-priority holder's lock is revoked. A revoked lock, or an input
    that cannot be locked (e.g. nothing to compact), fails at once.

    :param druid_task: the submitted task (templated).
    :param lock_timeout_s: seconds to wait in-process for the locks on each try before giving the slot back.
    :param lock_wait_timeout: how long to wait for the locks in all (default 6 hours).
    """

    _step_name = "acquire_locks"
    _heartbeat = False  # nothing is held until the step returns

    def __init__(self, *, lock_timeout_s: float = 0, lock_wait_timeout: timedelta | float = LOCK_WAIT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(**lock_wait_sensor_args(kwargs, lock_wait_timeout, retries=2))
        self.lock_timeout_s = lock_timeout_s
        self.lock_wait_timeout = lock_wait_timeout

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from druidflow.tasks import protocol

        task = self._parse_task()
        try:
            locks = self._run(context, lambda: _waiting(lambda: protocol.acquire_locks(task, self.runtime, timeout_s=self.lock_timeout_s)))
        except _StillLocked as waiting:
            self.log.info("Waiting for the locks of Druid task %s: %s", task.task_id, waiting.args[0])
            return False
        payload = [lock.to_json() for lock in locks]
        for lock in payload:
            self.log.info("Locked %s %s (version %s, priority %s)", lock["dataSource"], lock["interval"], lock["version"], lock["priority"])
        if not payload:
            self.log.info("Druid task %s locks nothing yet; the plan step locks what it finds", task.task_id)
        return PokeReturnValue(is_done=True, xcom_value=payload)

    def execute(self, context: Context) -> Any:
        done = self.poke(context)  # a free lock is taken at once, without the sensor's bookkeeping
        if isinstance(done, PokeReturnValue) and done:
            return done.xcom_value
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            druid_task_id = self._druid_task_id()
            self._mark_failed(druid_task_id, f"acquire_locks of Druid task {druid_task_id}: still locked after {self.timeout}s")
            raise AirflowFailException(f"acquire_locks: {exc}; the locks stayed with other tasks, nothing was done") from exc


class _StillLocked(Exception):
    """Inside a poke: the locks are held by others (not an error of the step)."""


def _waiting(fn):
    try:
        return fn()
    except LockUnavailableError as exc:
        raise _StillLocked(str(exc)) from None


class DruidTaskPlanOperator(DruidTaskStepOperator):
    """Plan a task under its locks; returns its build units (the build step maps over them) and pushes the whole
    plan under the XCom key ``plan``.

    :param druid_task: the submitted task (templated).
    """

    _step_name = "plan"

    def __init__(self, **kwargs: Any) -> None:
        # An index task without intervals finds and locks its chunks here: a conflict is retried with backoff.
        kwargs.setdefault("retries", 60)
        kwargs.setdefault("retry_delay", timedelta(seconds=10))
        kwargs.setdefault("retry_exponential_backoff", 2.0)
        kwargs.setdefault("max_retry_delay", timedelta(minutes=5))
        super().__init__(**kwargs)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        task = self._parse_task()
        definition = self._definition(task)
        plan = self._run(context, lambda: definition.plan(task, self.runtime))
        units = [unit.model_dump() if hasattr(unit, "model_dump") else unit for unit in definition.build_units(plan)]
        context["ti"].xcom_push(key="plan", value=plan.model_dump())
        self.log.info("Druid %s task %s: %d build unit(s)", task.type, task.task_id, len(units))
        return units


class DruidTaskBuildOperator(DruidTaskStepOperator):
    """Build one unit and push its files to deep storage; returns the build result (segment descriptors).

    Meant to be mapped, one instance per unit, each labelled with its interval/shard (``map_index_template``).

    :param druid_task: the submitted task (templated).
    :param build_unit: one build unit (templated; usually mapped).
    :param plan: the ``plan`` XCom of the plan step (templated); ``index`` builds without it.
    """

    template_fields: Sequence[str] = ("druid_task", "plan", "build_unit", "work_dir")
    _step_name = "build"

    def __init__(
        self, *, build_unit: dict[str, Any] | str | XComArg, plan: dict[str, Any] | str | XComArg | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("map_index_template", "{{ task.build_unit_label }}")
        kwargs.setdefault("retries", BUILD_RETRIES)
        kwargs.setdefault("retry_delay", BUILD_RETRY_DELAY)
        super().__init__(**kwargs)
        self.plan = plan
        self.build_unit = build_unit

    @property
    def build_unit_label(self) -> str:
        """The unit's interval (and shard), shown as the mapped instance's name."""
        try:
            return build_unit_label(as_dict(self.build_unit, "build_unit"))
        except AirflowException:
            return ""

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.tasks import protocol

        task = self._parse_task()
        unit = as_dict(self.build_unit, "build_unit")
        plan = None if self.plan is None else as_dict(self.plan, "plan")
        result = self._run(context, lambda: protocol.build(task, plan, unit, self.runtime))
        segments = getattr(result, "segments", [])
        self.log.info("Druid task %s built %d segment(s) for %s", task.task_id, len(segments), build_unit_label(unit))
        return result.model_dump()


def build_unit_label(unit: Mapping[str, Any]) -> str:
    """The time chunks (and shard) of a build unit dict, shortened for ``map_index_template``."""
    intervals = []
    single = unit.get("segment") if isinstance(unit.get("segment"), Mapping) else unit.get("chunk")  # merge units: "chunk"
    for chunk in unit.get("chunks") or ([single] if isinstance(single, Mapping) else []):
        if not isinstance(chunk, Mapping):
            continue
        text = str(chunk.get("interval", "")).replace("T00:00:00.000Z", "").replace(".000Z", "Z")
        shards = chunk.get("shards") or []
        if len(shards) == 1 and isinstance(shards[0], Mapping):
            text += f"#{shards[0].get('partitionNum')}/{shards[0].get('numPartitions')}"
        elif "shardSpec" in chunk and isinstance(chunk["shardSpec"], Mapping):
            text += f"#{chunk['shardSpec'].get('partitionNum', 0)}"
        intervals.append(text)
    return ",".join(intervals) or "?"


class DruidTaskPublishOperator(DruidTaskStepOperator):
    """Execute the task's publish plan in one transaction and return its report (also stored in the tasks table).

    Emits an Asset event for ``druidflow://<dataSource>`` whose extra holds the dataSource, the task id and the
    published segment ids. With no ``outlets`` the event goes through the asset alias ``druidflow``; give
    ``outlets=[datasource_asset("wiki")]`` to declare the asset statically instead.

    :param druid_task: the submitted task (templated).
    :param plan: the ``plan`` XCom of the plan step (templated).
    :param build_results: every build instance's result, i.e. ``build.output`` (templated).
    """

    template_fields: Sequence[str] = ("druid_task", "plan", "build_results", "work_dir")
    _step_name = "publish"

    def __init__(self, *, plan: dict[str, Any] | str | XComArg, build_results: Any, **kwargs: Any) -> None:
        from airflow.sdk import AssetAlias

        kwargs.setdefault("outlets", [AssetAlias(DEFAULT_ASSET_ALIAS)])
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=10))
        super().__init__(**kwargs)
        self.plan = plan
        self.build_results = build_results

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.tasks import protocol

        task = self._parse_task()
        # A LazyXComSequence over the mapped build instances (or a plain list when called directly).
        raw = [] if self.build_results is None else list(self.build_results)
        results = [as_dict(r, "build_results[]") for r in raw if r]
        report = self._run(context, lambda: protocol.publish(task, as_dict(self.plan, "plan"), results, self.runtime))
        segment_ids = [s.id for s in report.segments]
        self.log.info("Druid %s task %s published %d segment(s) of %s", task.type, task.task_id, len(segment_ids), task.data_source)
        if segment_ids:
            emit_asset_event(self, context, task.data_source, task.task_id, segment_ids)
        return report.model_dump()


def emit_asset_event(op: BaseOperator, context: Context, data_source: str, druid_task_id: str, segment_ids: list[str]) -> None:
    """The ``druidflow://<dataSource>`` Asset event of a publish, through the operator's outlets."""
    from airflow.sdk import Asset, AssetAlias

    asset = datasource_asset(data_source)
    extra: dict[str, JsonValue] = {"dataSource": data_source, "taskId": druid_task_id, "segments": [*segment_ids]}
    outlet_events = context["outlet_events"]
    for outlet in op.outlets:
        if isinstance(outlet, AssetAlias):
            outlet_events[outlet].add(asset, extra=extra)
        elif isinstance(outlet, Asset) and outlet.uri == asset.uri:
            outlet_events[outlet].extra = extra


class DruidTaskReleaseOperator(DruidTaskStepOperator):
    """Release a Druid task's locks; as the workflow's *teardown* it runs even when a step failed.

    It then ends as the Druid task ended: it succeeds when the task published (SUCCESS), and fails when it did not,
    after releasing the locks. In a task group it is the teardown with ``on_failure_fail_dagrun``, so the run's
    state is the Druid task's outcome — also when a person marks the run failed half-way (Airflow leaves the teardown
    to run; the task, still RUNNING, is recorded FAILED here). Releasing is idempotent.

    :param druid_task: the submitted task, i.e. the XCom of the submit step, or its id (templated).
    """

    _step_name = "release_locks"
    _heartbeat = False

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=5))
        super().__init__(**kwargs)

    def _task_dict(self) -> dict[str, Any]:
        if isinstance(self.druid_task, str) and not self.druid_task.lstrip().startswith("{"):
            return {"id": self.druid_task}
        return super()._task_dict()

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.tasks.protocol import fail, release

        druid_task_id = self._druid_task_id()
        if not druid_task_id:
            raise AirflowFailException("release_locks: the submitted task carries no task id")
        rt = self.runtime
        record = rt.store.get_task(druid_task_id)
        status = _task_status(record)
        if status == "RUNNING":
            fail(druid_task_id, "The Airflow run ended before the task published (a step failed or was stopped).", rt)
            status = "FAILED"
        self._run(context, lambda: release(druid_task_id, rt))
        self.log.info("Released the locks of Druid task %s (status %s)", druid_task_id, status)
        if status != "SUCCESS":
            record = rt.store.get_task(druid_task_id)
            why = getattr(record, "error_msg", None) or "it did not publish"
            raise AirflowFailException(
                f"Druid task {druid_task_id} ended {status}: {why}. Its locks are released and nothing of it was published."
            )
        return {"id": druid_task_id, "status": status}


def _task_status(record: Any) -> str | None:
    if record is None:
        return None
    if isinstance(record, Mapping):
        return record.get("status")
    return getattr(record, "status", None)
