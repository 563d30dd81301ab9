"""The folded setup and teardown of the lean ``index_parallel`` TaskGroup: fewer serial Airflow tasks per run.

Every Airflow task instance costs a worker process, a DAG parse and a round of scheduling (seconds on a small box).
The one-operator-per-step workflow spends seven of them in a row on control steps; the lean group folds

* submit, acquire_locks and split_input (and decide, when the partitioning needs no statistics) into
  :class:`ParallelSubmitLockSplitOperator`, the group's *setup*;
* publish, the partials' cleanup and release_locks into :class:`ParallelPublishReleaseOperator`, its *teardown*;

so that a run is ``submit_lock_split >> scan (mapped, skipped when not needed) >> decide_partitions >>
partial_segments (mapped) >> plan_merges >> merge_segments (mapped) >> publish_release``.

Each folded step stays one retryable unit with the guarantees of the steps it folds:

* the setup is a ``reschedule``-mode sensor like acquire_locks: locks held by a task of equal or higher priority
  give the worker slot back without spending a retry. The Druid task id it submitted is kept in the task instance's
  ``task_state_store``, so a retry (or a reschedule) resubmits *the same* task — recorded once, its own locks
  reused — instead of leaving an orphan holding locks (a task that has ended, when a person clears the run, is not
  resumed: a new one is submitted). A failure after the locks were taken releases them (the
  teardown runs only after a successful setup) and, when no retry is left, records the task FAILED.
* the teardown publishes only when every merge unit that plan_merges listed has a successful merge result and the
  run was not marked failed; otherwise it records the task FAILED. In every case it then deletes the task's partial
  files and releases its locks, and it ends as the Druid task ended (the run's state is the task's outcome). Publish,
  cleanup and release are idempotent, so a retry after a crash anywhere in it is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from druidflow.operators.base import DEFAULT_ASSET_ALIAS, SpecSubmitOperator, as_dict
from druidflow.operators.druid_task import (
    LOCK_WAIT_TIMEOUT,
    DruidTaskReleaseOperator,
    _StillLocked,
    _waiting,
    emit_asset_event,
    lock_wait_sensor_args,
)
from druidflow.operators.parallel import ParallelDecideOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The ``task_state_store`` key under which the setup keeps the id of the Druid task it submitted.
DRUID_TASK_ID_KEY = "druid_task_id"


def _engine():
    from druidflow.tasks import parallel

    return parallel


class ParallelSubmitLockSplitOperator(SpecSubmitOperator, BaseSensorOperator):
    """submit >> acquire_locks >> split_input of an ``index_parallel`` task as one setup step (a sensor in
    ``reschedule`` mode while the locks are held elsewhere).

    Returns the splits to scan (none when the partitioning needs no statistics: then the plan is decided here) and
    pushes the submitted task under the XCom key ``druid_task`` and the plan under ``plan``.

    :param spec: the Druid task JSON (templated); ``None`` reads the trigger form.
    :param lock_timeout_s: seconds to wait in-process for the locks on each try before giving the slot back.
    :param lock_wait_timeout: how long to wait for the locks in all (default 6 hours).
    """

    _step_name = "submit_lock_split"
    _heartbeat = True
    default_task_type = "index_parallel"
    default_trigger_form = "druidflow.airflow.parallel_form:PARALLEL_FORM"

    def __init__(self, *, lock_timeout_s: float = 0, lock_wait_timeout: timedelta | float = LOCK_WAIT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(**lock_wait_sensor_args(kwargs, lock_wait_timeout, retries=3))
        self.lock_timeout_s = lock_timeout_s
        self.lock_wait_timeout = lock_wait_timeout
        self._submitted_id: str | None = None

    def _druid_task_id(self) -> str | None:
        return self._submitted_id

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from druidflow.tasks import protocol

        store = context.get("task_state_store")
        known = self._unfinished(store)
        task = self.submit_task(context, task_id=known)
        if store is not None and task.task_id != known:
            store.set(DRUID_TASK_ID_KEY, task.task_id)
        self._submitted_id = task.task_id
        try:
            locks = self._run(
                context,
                lambda: _waiting(lambda: protocol.acquire_locks(task, self.runtime, timeout_s=self.lock_timeout_s)),
                heartbeat=False,  # nothing is held until the locks are taken
            )
        except _StillLocked as waiting:
            self.log.info("Waiting for the locks of Druid task %s: %s", task.task_id, waiting.args[0])
            return False
        for lock in (lk.to_json() for lk in locks):
            self.log.info("Locked %s %s (version %s, priority %s)", lock["dataSource"], lock["interval"], lock["version"], lock["priority"])
        try:
            the_plan = self._run(context, lambda: _engine().plan(task, self.runtime))
        except BaseException:
            self._give_back(context, task.task_id)
            raise
        ti = context["ti"]
        ti.xcom_push(key="druid_task", value=task.model_dump())
        ti.xcom_push(key="plan", value=the_plan.model_dump())
        self.log.info(
            "Druid index_parallel task %s: %d split(s)%s", task.task_id, len(the_plan.splits),
            ", scanning them first" if the_plan.scan else ("; partitions decided" if the_plan.chunks_known else ""),
        )
        return PokeReturnValue(is_done=True, xcom_value=[s.model_dump() for s in the_plan.scan_splits])

    def _unfinished(self, store: Any) -> str | None:
        """The Druid task an earlier try or poke of this task instance submitted, unless it has ended (a cleared run
        of a finished task runs a new one)."""
        if store is None:
            return None
        known = store.get(DRUID_TASK_ID_KEY)
        if not known:
            return None
        record = self.runtime.store.get_task(str(known))
        if record is not None and getattr(record, "status", None) in ("SUCCESS", "FAILED"):
            return None
        return str(known)

    def _give_back(self, context: Context, druid_task_id: str) -> None:
        """The split failed after the locks were taken: the teardown will not run (its setup failed), so release
        them here; with no retry left, the task is over (FAILED)."""
        from druidflow.tasks import protocol

        try:
            protocol.release(druid_task_id, self.runtime)
            if self._is_last_attempt(context):
                protocol.fail(druid_task_id, f"{self._step_name} failed on its last try", self.runtime)
        except Exception:
            self.log.exception("Could not release the locks of Druid task %s", druid_task_id)

    def execute(self, context: Context) -> Any:
        done = self.poke(context)  # free locks are taken at once, without the sensor's bookkeeping
        if done:
            return done.xcom_value  # type: ignore[union-attr]
        try:
            return BaseSensorOperator.execute(self, context)
        except AirflowSensorTimeout as exc:
            self._mark_failed(self._submitted_id, f"{self._step_name} of Druid task {self._submitted_id}: still locked after {self.timeout}s")
            raise AirflowFailException(f"{self._step_name}: {exc}; the locks stayed with other tasks, nothing was done") from exc


class ParallelLeanDecideOperator(ParallelDecideOperator):
    """decide_partitions reading the task and the plan from the setup's XComs (keys ``druid_task`` and ``plan``).

    It runs also when the mapped scan was skipped (trigger rule ``none_failed``), which Airflow allows only for a task
    that is no direct downstream of a setup: so it names the setup's task id instead of taking its XComArgs.

    :param setup_task_id: the task id of :class:`ParallelSubmitLockSplitOperator`.
    """

    template_fields: Sequence[str] = ("scans", "work_dir")

    def __init__(self, *, setup_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("druid_task", None)
        super().__init__(**kwargs)
        self.setup_task_id = setup_task_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        ti = context["ti"]
        self.druid_task = ti.xcom_pull(task_ids=self.setup_task_id, key="druid_task")
        self.plan = ti.xcom_pull(task_ids=self.setup_task_id, key="plan")
        return super().execute(context)


class ParallelPublishReleaseOperator(DruidTaskReleaseOperator):
    """publish >> release_locks of an ``index_parallel`` task as one teardown step, deleting the partial files too.

    Publishes (one transaction, an Asset event for ``druidflow://<dataSource>``) only when every merge unit listed by
    ``merges_task_id`` has a result from ``merge_task_id`` and the run was not marked failed; then deletes the task's
    partials, releases its locks and ends as the Druid task ended.

    :param druid_task: the submitted task (templated: the setup's ``druid_task`` XCom).
    :param merges_task_id: the task id of plan_merges (its return value lists the merge units, key ``final_plan``
        holds the publish plan).
    :param merge_task_id: the task id of the mapped merge (one result per unit).
    """

    template_fields: Sequence[str] = ("druid_task", "work_dir")
    _step_name = "publish_release"

    def __init__(self, *, merges_task_id: str, merge_task_id: str, **kwargs: Any) -> None:
        from airflow.sdk import AssetAlias

        kwargs.setdefault("outlets", [AssetAlias(DEFAULT_ASSET_ALIAS)])
        super().__init__(**kwargs)
        self.merges_task_id = merges_task_id
        self.merge_task_id = merge_task_id

    def _complete_outputs(self, context: Context) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The publish plan and every merge result, or None when a step did not finish or the run was stopped."""
        ti = context["ti"]
        run_state = ti.get_dagrun_state(dag_id=ti.dag_id, run_id=ti.run_id)
        if getattr(run_state, "value", run_state) == "failed":
            self.log.warning("The run was marked failed: nothing is published")
            return None
        final_plan = ti.xcom_pull(task_ids=self.merges_task_id, key="final_plan")
        units = ti.xcom_pull(task_ids=self.merges_task_id)
        if final_plan is None or units is None:
            self.log.warning("%s did not finish: nothing is published", self.merges_task_id)
            return None
        results = [as_dict(r, "merge result") for r in (ti.xcom_pull(task_ids=[self.merge_task_id]) or []) if r]
        if len(results) != len(list(units)):
            self.log.warning("%d of %d merge unit(s) finished: nothing is published", len(results), len(list(units)))
            return None
        return as_dict(final_plan, "final_plan"), results

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.tasks import protocol

        druid_task_id = self._druid_task_id()
        if not druid_task_id:
            raise AirflowFailException(f"{self._step_name}: the submitted task carries no task id")
        rt = self.runtime
        record = rt.store.get_task(druid_task_id)
        outputs = self._complete_outputs(context) if getattr(record, "status", None) == "RUNNING" else None
        if outputs is not None:
            task = self._parse_task()
            try:
                report = self._run(context, lambda: protocol.publish(task, outputs[0], outputs[1], rt))
            except AirflowFailException:
                self._finish(context, druid_task_id)  # failed for good (recorded FAILED): nothing stays locked
                raise
            except Exception:
                if self._is_last_attempt(context):
                    self._finish(context, druid_task_id)
                raise  # a retry publishes again: the locks stay with the task meanwhile
            segment_ids = [s.id for s in report.segments]
            self.log.info("Druid index_parallel task %s published %d segment(s) of %s", task.task_id, len(segment_ids), task.data_source)
            if segment_ids:
                emit_asset_event(self, context, task.data_source, task.task_id, segment_ids)
            released = self._finish(context, druid_task_id)
            return {**report.model_dump(), **released}  # the publish report, as publish returns it (Druid API reads it)
        return self._finish(context, druid_task_id)

    def _finish(self, context: Context, druid_task_id: str) -> dict[str, Any]:
        """Delete the partials, then release_locks: ends as the Druid task ended (fails unless SUCCESS)."""
        removed = self._run(context, lambda: _engine().cleanup(druid_task_id, self.runtime))
        self.log.info("Deleted %d partial file(s) of Druid task %s", removed, druid_task_id)
        return super().execute(context)
