"""What every Druidflow operator shares: hooks, a lease heartbeat while a step runs, ``on_kill``, typed failures.

Errors are typed. A :class:`~druidflow.exceptions.TerminalError` (bad spec, revoked lock, changed input, ...) raises
``AirflowFailException`` at once: no retry, a message that says what happened and what to do, and the task row is
marked FAILED. A :class:`~druidflow.exceptions.RetryableError` raises ``AirflowException`` so Airflow retries.

**A lock held by a task of equal or higher priority: a reschedule-mode wait.** Druid leaves such a task WAITING in its
queue until the lock frees up. Here, the acquire-locks step (:class:`~druidflow.operators.druid_task.DruidTaskAcquireLocksOperator`)
is a sensor in ``reschedule`` mode: it tries (optionally waiting up to ``lock_timeout_s`` in-process), and while the
locks are held elsewhere it gives its worker slot back (``up_for_reschedule``) and tries again later, with
exponential backoff, until ``lock_wait_timeout`` — without spending a single retry. We chose this over a deferrable
trigger because it needs no triggerer and no async database driver (triggers cannot use Airflow's ORM and would need
their own async engine on our tables), and a lock wait is minutes, not seconds. A lower-priority holder does not
cause a wait: the lockbox revokes its lock and the acquisition succeeds.
"""

from __future__ import annotations

import importlib
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
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
from druidflow.process_tuning import owned_process

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


def user_error(message: str, cause: BaseException | None = None) -> AirflowFailException:
    """An ``AirflowFailException`` for a user error: raise it ``from None`` so that the log shows one traceback,
    not the engine's as well; the engine's error stays reachable as :func:`druidflow_cause`."""
    error = AirflowFailException(message)
    # An attribute of Airflow's own exception (not a subclass: the log must name AirflowFailException).
    error.druidflow_error = cause  # type: ignore[attr-defined]
    return error


def druidflow_cause(exc: BaseException) -> BaseException | None:
    """The Druidflow error behind an Airflow exception raised by these operators."""
    return getattr(exc, "druidflow_error", None) or exc.__cause__


def as_dict(value: Any, what: str) -> dict[str, Any]:
    """A dict from an XCom/template value that may arrive as JSON text (non-native template rendering)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise AirflowFailException(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise AirflowFailException(f"{what} must be a JSON object, got {type(value).__name__}")
    return dict(value)


class DruidflowStepOperator(BaseOperator):
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

    def _task_dict(self) -> dict[str, Any] | None:
        """The submitted Druid task JSON this step works on; ``None`` for a step that works on none (the default:
        steps bound to a task override it)."""
        return None

    def _druid_task_id(self) -> str | None:
        try:
            task = self._task_dict()
        except AirflowException:
            return None
        return str(task["id"]) if task is not None and "id" in task else None

    # -- running a step ---------------------------------------------------------------------------------------

    def _run(self, context: Context, fn: Callable[[], T], *, heartbeat: bool | None = None) -> T:
        """Run one engine step with the lease heartbeat on (unless ``heartbeat`` is False, or the operator's
        ``_heartbeat``), mapping Druidflow errors to Airflow's."""
        druid_task_id = self._druid_task_id()
        beating = self._heartbeat if heartbeat is None else heartbeat
        try:
            # An Airflow task runs in a process of its own, so the engine may tune its allocator for the step.
            if not (beating and druid_task_id):
                with owned_process():
                    return fn()
            from druidflow.tasks.protocol import heartbeat as renew_leases

            rt = self.runtime
            with LeaseHeartbeat(
                lambda: renew_leases(druid_task_id, rt), interval_s=self.heartbeat_interval_s, name=druid_task_id
            ) as beat, owned_process():
                result = fn()
            beat.check()  # a lock revoked mid-step makes the step's output worthless
            return result
        except DruidflowError as exc:
            error = self._airflow_error(exc, context, druid_task_id)
            error.druidflow_error = exc  # type: ignore[attr-defined]
            raise error from None

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
            from druidflow.tasks.protocol import fail

            fail(druid_task_id, message, self.runtime)
        except Exception:
            self.log.exception("Could not mark Druid task %s as failed", druid_task_id)

    def on_kill(self) -> None:
        """Release the Druid task's locks: a killed step must not keep its time chunks locked."""
        druid_task_id = self._druid_task_id()
        if not druid_task_id:
            return
        try:
            from druidflow.tasks.protocol import release

            release(druid_task_id, self.runtime)
            self.log.info("Released the locks of Druid task %s", druid_task_id)
        except Exception:
            self.log.exception("Could not release the locks of Druid task %s", druid_task_id)




class SpecSubmitOperator(DruidflowStepOperator):
    """The first step of any task workflow: validate a Druid task JSON (``spec``, else the run's trigger form), run the
    task type's checks and record the task; returns the task JSON with its id for the next steps. An invalid spec
    fails at once (no retry) naming the field (or the trigger-form field), before anything is locked or written.

    :param spec: the Druid task JSON: a dict, JSON text, or a path to a ``.json`` file (templated); ``None`` reads
        the trigger form from ``params``.
    :param druid_task_type: the Druid task type this workflow runs (a spec of another type is refused); ``None``: any.
    :param trigger_form: ``"module:NAME"`` of the :class:`~druidflow.airflow.trigger_form.TriggerForm` the run's
        params fill in when ``spec`` is empty.
    """

    template_fields: Sequence[str] = ("spec",)
    template_ext: Sequence[str] = (".json",)
    template_fields_renderers = {"spec": "json"}
    _step_name = "submit"
    _heartbeat = False

    #: Defaults of ``druid_task_type`` and ``trigger_form`` for a subclass bound to one task type.
    default_task_type: str | None = None
    default_trigger_form: str | None = None

    def __init__(
        self,
        *,
        spec: dict[str, Any] | str | None = None,
        druid_task_type: str | None = None,
        trigger_form: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("render_template_as_native_obj", True)
        super().__init__(**kwargs)
        self.spec = spec
        self.druid_task_type = druid_task_type or self.default_task_type
        self.trigger_form = trigger_form or self.default_trigger_form

    def _form(self):
        if not self.trigger_form:
            raise AirflowFailException(f"{self.task_id}: no spec given and no trigger form to read one from")
        module, name = self.trigger_form.split(":")
        return getattr(importlib.import_module(module), name)

    def _submit(self, spec: dict[str, Any]) -> Any:
        from druidflow.specs.tasks import parse_task
        from druidflow.tasks import protocol

        task = parse_task(spec)
        wanted = self.druid_task_type
        if wanted and task.type != wanted and not _same_type(task.type, wanted):
            from druidflow.tasks.registry import TASK_TYPES

            elsewhere = TASK_TYPES[task.type].dag_id if task.type in TASK_TYPES else None
            hint = f"; run {task.type} tasks with the {elsewhere} DAG" if elsewhere else ""
            raise SpecError("type", task.type, f"this workflow runs {wanted} tasks{hint}")
        return protocol.submit(task, self.runtime)

    def _druid_task_id(self) -> str | None:
        return None

    def _from_form(self) -> bool:
        return self.spec is None or (isinstance(self.spec, str) and not self.spec.strip())

    def resolve_spec(self, context: Context) -> dict[str, Any]:
        """The task JSON this run submits (``spec``, else the trigger form)."""
        if self._from_form():
            try:
                return self._form().spec_from_form(dict(context.get("params") or {}))
            except SpecError as exc:
                raise user_error(
                    f"Trigger form field '{exc.path}' is invalid: {exc.reason} (got {exc.value!r}). "
                    "Fix it and trigger a new run; nothing was locked or written.",
                    exc,
                ) from None
        return as_dict(self.spec, "spec")

    def submit_task(self, context: Context, task_id: str | None = None) -> Any:
        """Validate and record the run's task (under ``task_id`` when given: a retried step resubmits the same
        task, which the protocol records once); returns the parsed task."""
        spec = self.resolve_spec(context)
        if task_id:
            spec = {**spec, "id": task_id}
        built_from_fields = self._from_form() and not (context.get("params") or {}).get("spec")
        try:
            task = self._run(context, lambda: self._submit(spec), heartbeat=False)
        except AirflowFailException as exc:
            cause = druidflow_cause(exc)
            field = self._form().field_for(cause.path) if built_from_fields and isinstance(cause, SpecError) else None
            if field:
                raise user_error(f"{exc} (trigger form field '{field}')", cause) from None
            raise
        self.log.info("Submitted Druid %s task %s on dataSource %s", task.task_type, task.task_id, task.data_source)
        return task

    def execute(self, context: Context) -> dict[str, Any]:
        return self.submit_task(context).model_dump()


def _same_type(given: str, wanted: str) -> bool:
    aliases = ({"convert_segment", "version_converter"},)
    return any(given in group and wanted in group for group in aliases)
