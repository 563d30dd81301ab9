"""Operators for Druid's ``compact`` task and for scheduled automatic compaction.

**One compaction as steps** (built in one line by :func:`druidflow.airflow.compact_task_groups.compact_task_group`,
the shape of ``druidflow_index``)::

    submit >> acquire_locks (setup) >> plan >> build_segments (mapped) >> publish >> release_locks (teardown)

* :class:`CompactSubmitOperator` validates the compact task JSON (or the trigger form) and records the task.
* :class:`CompactAcquireLocksOperator` locks the umbrella interval of the visible input (fails at once, with no
  retry, when the interval holds no segment).
* :class:`CompactPlanOperator` re-selects the input under the lock, checks the segment list / hash, infers the output
  schema and returns the build units (one mapped build per output time chunk); the plan goes to XCom ``plan``.
* :class:`CompactBuildSegmentsOperator` re-indexes one unit, reading only its own chunk of the visible input.
* :class:`CompactPublishOperator` publishes in one transaction after checking, under the lock, that the input did
  not change; the inputs it overshadows are marked unused (``overshadowed-by-compaction``) in that transaction.
  It emits the ``druidflow://<dataSource>`` Asset event, like the index publish.
* The teardown is :class:`druidflow.operators.index.ReleaseLocksOperator`.

**One compaction as one task**: :class:`CompactOperator` runs all the steps in one worker; automatic compaction maps
it over the chunks the planner chose.

**Automatic compaction** (``druidflow_auto_compaction``)::

    plan (AutoCompactionPlanOperator) >> compact (CompactOperator, mapped, bounded) >> report (all_done)

Failures are typed as in the index operators: a spec error, a revoked lock or changed input fails at once (no retry)
with a message saying what happened; a lock held by an equal-or-higher priority task is retried. Under automatic
compaction a chunk that was preempted, locked meanwhile, changed or emptied since planning is *skipped* instead (the
next run plans it again); its Druid task is still recorded FAILED with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from druidflow.exceptions import (
    DruidflowError,
    InputChangedError,
    LockRevokedError,
    LockUnavailableError,
    NoSegmentsError,
    SpecError,
)
from druidflow.operators.base import DruidflowStepOperator, SpecSubmitOperator, as_dict, user_error
from druidflow.operators.druid_task import (
    DruidTaskAcquireLocksOperator,
    DruidTaskBuildOperator,
    DruidTaskPlanOperator,
    DruidTaskPublishOperator,
    emit_asset_event,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The Airflow Variable holding the auto-compaction settings (JSON), or the path of a JSON file with them.
CONFIG_VARIABLE = "druidflow_auto_compaction"
#: Environment variable naming a settings file, used when neither the DAG param nor the Variable gives one.
CONFIG_FILE_ENV = "DRUIDFLOW_AUTO_COMPACTION_CONFIG"

# What a scheduled compaction may meet between planning and running; the next run plans the chunk again.
_PREEMPTED = (LockUnavailableError, LockRevokedError, InputChangedError, NoSegmentsError)


class CompactSubmitOperator(SpecSubmitOperator):
    """Validate a Druid ``compact`` task JSON (or the ``druidflow_compact`` trigger form) and record the task.

    :param spec: the compact task JSON: a dict, JSON text, or a path to a ``.json`` file (templated); ``None`` reads
        the trigger form from ``params``.
    :param druid_task_type: the task type (``compact``; another type is refused).
    :param trigger_form: the trigger form a spec-less run reads (the ``druidflow_compact`` form).
    """

    ui_color = "#7fb3d5"
    default_task_type = "compact"
    default_trigger_form = "druidflow.airflow.compact_form:COMPACT_FORM"


class CompactAcquireLocksOperator(DruidTaskAcquireLocksOperator):
    """Lock the umbrella interval of the compaction's visible input (the *setup*; waits in reschedule mode; an
    interval with no segment fails at once).

    :param compact_task: the submitted task (templated).
    """

    ui_color = "#7fb3d5"

    def __init__(self, *, compact_task: Any, **kwargs: Any) -> None:
        super().__init__(druid_task=compact_task, **kwargs)


class CompactPlanOperator(DruidTaskPlanOperator):
    """Under the lock: select and check the input, infer the output schema, plan the chunks.

    :param compact_task: the submitted task (templated).
    """

    ui_color = "#7fb3d5"

    def __init__(self, *, compact_task: Any, **kwargs: Any) -> None:
        super().__init__(druid_task=compact_task, **kwargs)


class CompactBuildSegmentsOperator(DruidTaskBuildOperator):
    """Re-index one build unit, reading only its own chunk of the visible input (mapped).

    :param compact_task: the submitted task (templated).
    :param plan: the ``plan`` XCom of :class:`CompactPlanOperator` (templated).
    :param build_unit: one build unit (templated; usually mapped).
    """

    ui_color = "#7fb3d5"
    _step_name = "build_segments"

    def __init__(self, *, compact_task: Any, plan: Any, build_unit: Any, **kwargs: Any) -> None:
        super().__init__(druid_task=compact_task, plan=plan, build_unit=build_unit, **kwargs)


class CompactPublishOperator(DruidTaskPublishOperator):
    """Publish the compacted segments (after re-checking the input under the lock) and return the report.

    :param compact_task: the submitted task (templated).
    :param plan: the ``plan`` XCom of :class:`CompactPlanOperator` (templated).
    :param build_results: every build instance's result, i.e. ``build.output`` (templated).
    """

    ui_color = "#7fb3d5"

    def __init__(self, *, compact_task: Any, plan: Any, build_results: Any, **kwargs: Any) -> None:
        super().__init__(druid_task=compact_task, plan=plan, build_results=build_results, **kwargs)


class CompactOperator(DruidflowStepOperator):
    """Run a whole Druid ``compact`` task (submit, lock, plan, build, publish, release) in one Airflow task.

    Automatic compaction maps it over the planned tasks. ``execution_timeout`` bounds each compaction; ``on_kill``
    (and the engine's own ``finally``) release its locks.

    :param spec: the compact task JSON (templated; usually mapped from the planner's output).
    :param lock_timeout_s: seconds to wait in-process for the lock.
    :param skip_when_preempted: skip the Airflow task (instead of failing or retrying it) when the chunk was locked,
        preempted, changed or emptied after planning: the next scheduler run plans it again.
    """

    template_fields: Sequence[str] = ("spec", "work_dir")
    template_fields_renderers = {"spec": "json"}
    ui_color = "#7fb3d5"
    _step_name = "compact"

    def __init__(self, *, spec: dict[str, Any] | str, lock_timeout_s: float = 0, skip_when_preempted: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", "{{ task.label }}")
        super().__init__(**kwargs)
        self.spec = spec
        self.lock_timeout_s = lock_timeout_s
        self.skip_when_preempted = skip_when_preempted
        self._resolved_id: str | None = None

    @property
    def label(self) -> str:
        """``<dataSource> <interval>`` of the compaction, shown as the mapped instance's name."""
        try:
            spec = as_dict(self.spec, "spec")
        except AirflowException:
            return ""
        interval = (((spec.get("ioConfig") or {}).get("inputSpec") or {}).get("interval")) or spec.get("interval") or ""
        return f"{spec.get('dataSource', '?')} {interval}".replace("T00:00:00.000Z", "").strip()

    def _task_dict(self) -> dict[str, Any]:
        return as_dict(self.spec, "spec")

    def _druid_task_id(self) -> str | None:
        return self._resolved_id or super()._druid_task_id()

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.specs.tasks import parse_task
        from druidflow.tasks.compact import run

        spec = self._task_dict()
        try:
            task = parse_task(spec)
        except SpecError as exc:
            raise user_error(f"compact: the task spec is invalid: {exc}; nothing was locked or written.", exc) from None
        self._resolved_id = task.task_id
        report = self._run(context, lambda: run(task, self.runtime, timeout_s=self.lock_timeout_s))
        self.log.info(
            "Compacted %s %s: %d input segment(s) -> %d segment(s); %d marked unused",
            report.data_source, report.read_interval, len(report.input_segments), len(report.segments), len(report.marked_unused),
        )
        if report.segments:
            emit_asset_event(self, context, report.data_source, report.task_id, [s.id for s in report.segments])
        return report.model_dump()

    def _airflow_error(self, exc: DruidflowError, context: Context, druid_task_id: str | None) -> AirflowException:
        if self.skip_when_preempted and isinstance(exc, _PREEMPTED):
            message = (
                f"compaction {druid_task_id} skipped: {exc} ({type(exc).__name__}). Nothing was published; "
                "the next auto-compaction run plans this chunk again."
            )
            self.log.warning(message)
            self._mark_failed(druid_task_id, message)
            return AirflowSkipException(message)
        return super()._airflow_error(exc, context, druid_task_id)


class AutoCompactionPlanOperator(DruidflowStepOperator):
    """Plan one automatic-compaction run: a verdict with a reason for every time chunk, logged and kept in XCom
    ``report``; returns the compact task specs to run (a list, so ``CompactOperator`` maps over it).

    The settings (Druid's compaction config JSON, see ``docs/compaction.md``) come from, first match wins: the
    ``config`` argument or the run's ``config`` param; the ``config_file`` argument or param; the Airflow Variable
    ``druidflow_auto_compaction`` (the JSON itself, or a path to a JSON file); the file named by the environment
    variable ``DRUIDFLOW_AUTO_COMPACTION_CONFIG``.

    :param config: the settings as a dict or JSON text (templated).
    :param config_file: path to a JSON settings file (templated).
    :param config_variable: the Airflow Variable to read when neither is given.
    :param data_sources: only plan these dataSources (templated; default: every configured one).
    :param dry_run: plan and report only; compact nothing.
    """

    template_fields: Sequence[str] = ("config", "config_file", "data_sources", "dry_run_arg")
    ui_color = "#a9cce3"
    _step_name = "plan"
    _heartbeat = False

    def __init__(
        self,
        *,
        config: Any = None,
        config_file: str | None = None,
        config_variable: str = CONFIG_VARIABLE,
        data_sources: Any = None,
        dry_run: Any = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 2)
        kwargs.setdefault("retry_delay", timedelta(seconds=30))
        super().__init__(**kwargs)
        self.config = config
        self.config_file = config_file
        self.config_variable = config_variable
        self.data_sources = data_sources
        # Not ``self.dry_run``: that is BaseOperator's dry_run() method (template rendering only), which an
        # attribute of the same name would shadow.
        self.dry_run_arg = dry_run

    def _druid_task_id(self) -> str | None:
        return None

    def resolve_settings(self, context: Context):
        """The settings this run uses, and where they came from."""
        from druidflow.compaction.config import load_settings

        params = dict(context.get("params") or {}) if context else {}
        sources: list[tuple[str, Any]] = [
            ("the 'config' argument", self.config),
            ("the run's 'config' param", params.get("config")),
            ("the 'config_file' argument", self.config_file),
            ("the run's 'config_file' param", params.get("config_file")),
        ]
        for where, value in sources:
            if value not in (None, "", {}, []):
                return load_settings(value), where
        from airflow.sdk import Variable

        value = Variable.get(self.config_variable, default=None)
        if value not in (None, ""):
            return load_settings(value), f"the Airflow Variable {self.config_variable!r}"
        path = os.environ.get(CONFIG_FILE_ENV)
        if path:
            return load_settings(Path(path)), f"${CONFIG_FILE_ENV} ({path})"
        # As Druid's coordinator: a dataSource without a compaction config is not compacted. Nothing configured at
        # all is a valid (empty) configuration, not an error that would fail every scheduled run.
        return load_settings({}), None

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from druidflow.compaction.planner import plan_auto_compaction

        try:
            settings, where = self.resolve_settings(context)
        except SpecError as exc:
            raise user_error(f"auto-compaction settings are invalid: {exc}. Nothing was compacted.", exc) from None
        params = dict(context.get("params") or {}) if context else {}
        only = _names(self.data_sources) or _names(params.get("data_sources"))
        rt = self.runtime
        if where is None:
            where = "nothing"
            self.log.warning(
                "Auto-compaction is not configured, so no dataSource is compacted. Set the Airflow Variable %r to "
                "Druid's compaction config JSON (e.g. {\"compactionConfigs\": [{\"dataSource\": \"wikipedia\"}]}), "
                "or the file named by $%s, or give 'config' when triggering (see docs/compaction.md).",
                self.config_variable, CONFIG_FILE_ENV,
            )
        plan = self._run(context, lambda: plan_auto_compaction(settings, rt.store, rt.lockbox, data_sources=only or None))
        self.log.info(
            "Auto-compaction settings from %s: %d dataSource(s), %d slot(s) free of %d (%d compaction(s) running)",
            where, len(settings.compaction_configs), plan.slots, settings.max_compaction_task_slots, len(plan.running),
        )
        for note in plan.notes:
            self.log.info(note)
        for verdict in plan.verdicts:
            self.log.info(verdict.line())
        self.log.info("Verdicts: %s", ", ".join(f"{k} {v}" for k, v in sorted(plan.counts().items())) or "no chunks")
        dry_run = _truthy(self.dry_run_arg) or _truthy(params.get("dry_run"))
        context["ti"].xcom_push(key="report", value=plan.model_copy(update={"dry_run": dry_run}).model_dump())
        if dry_run:
            self.log.info("Dry run: %d compaction(s) planned, none started", len(plan.tasks))
            return []
        return plan.tasks


class AutoCompactionReportOperator(DruidflowStepOperator):
    """The run's report: every chunk's final verdict and reason (``compacted``, ``failed: ...``, ``skipped: ...``),
    logged one line per chunk and returned. Runs whatever happened upstream (``trigger_rule=all_done``).

    :param plan_report: the planner's ``report`` XCom (templated).
    """

    template_fields: Sequence[str] = ("plan_report",)
    ui_color = "#a9cce3"
    _step_name = "report"
    _heartbeat = False

    def __init__(self, *, plan_report: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.plan_report = plan_report

    def _druid_task_id(self) -> str | None:
        return None

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.compaction.planner import AutoCompactionPlan, run_report

        if not self.plan_report:
            raise AirflowFailException("report: the plan step produced no report (it failed); see its log")
        plan = AutoCompactionPlan.parse(as_dict(self.plan_report, "plan_report"), "plan_report")
        report = self._run(context, lambda: run_report(plan, self.runtime.store))
        for chunk in report["chunks"]:
            self.log.info(
                "%s %s: %s (%s)%s", chunk["dataSource"], chunk["interval"], chunk["verdict"], chunk["reason"],
                f" [task {chunk['taskId']}]" if chunk.get("taskId") else "",
            )
        self.log.info("Auto-compaction run: %s", ", ".join(f"{k} {v}" for k, v in sorted(report["counts"].items())) or "nothing to do")
        return report


def _names(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace(",", "\n").splitlines() if v.strip()]
    if isinstance(value, Mapping):
        return list(value)
    return [str(v) for v in value if str(v).strip()]


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")
