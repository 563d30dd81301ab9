"""Operators for deleting data: the ``kill`` task, marking segments unused/used, retention rules, scheduled kill.

* :class:`DruidKillOperator` runs one kill task in one Airflow task (its batches are short transactions; a kill
  is not split into steps). Fed a spec or fields by a DAG author, it does what the spec says (a dry run only if
  its context has ``"dryRun": true`` or ``dry_run=True``). Fed nothing, it reads the run's trigger form
  (:mod:`druidflow.airflow.kill_form`), where a person gets a **dry run unless they tick confirm**.
* :class:`MarkSegmentsUnusedOperator` / :class:`MarkSegmentsUsedOperator`: by interval, ids, or a whole dataSource.
* :class:`ApplyRetentionRulesOperator`: evaluate each dataSource's rules and mark dropped segments unused.
* :class:`ScheduledKillOperator`: kill unused segments older than the buffer period, only for dataSources the
  ``druidflow_retention`` configuration enables (see ``docs/retention.md``).

The Druid task id of a kill started without one is derived from the Airflow run and task, so an Airflow retry
reuses it (and finishes, first, whatever rows the failed try had claimed). A lock held by a task of equal or
higher priority makes the kill retry later with backoff; a revoked lock fails it at once, with what it deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from druidflow.exceptions import DruidflowError, LockRevokedError, SpecError
from druidflow.operators.base import DruidflowStepOperator, as_dict, druidflow_cause, user_error

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The Airflow Variable holding the retention configuration (JSON), see :mod:`druidflow.tasks.auto_kill`.
CONFIG_VARIABLE = "druidflow_retention"
#: Environment variable naming a JSON file with the configuration, used when the Variable is not set.
CONFIG_FILE_ENV = "DRUIDFLOW_RETENTION_CONFIG"


def _retry_on_lock(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("retries", 12)
    kwargs.setdefault("retry_delay", timedelta(seconds=30))
    kwargs.setdefault("retry_exponential_backoff", 2.0)
    kwargs.setdefault("max_retry_delay", timedelta(minutes=10))


class DruidKillOperator(DruidflowStepOperator):
    """Permanently delete the unused segments lying entirely inside an interval (Druid's ``kill`` task).

    Give either ``spec`` (a whole kill task), or ``data_source`` and ``interval`` (plus the optional fields), or
    neither, to read the run's trigger form. Returns the kill report (``dryRun`` says whether anything was
    deleted); the report is also stored in the tasks table and written to the log as a list of segments and files.

    :param spec: a Druid kill task JSON: dict, JSON text, or a path to a ``.json`` file (templated).
    :param data_source: the dataSource (templated).
    :param interval: ISO interval (templated).
    :param versions: only these versions (templated).
    :param batch_size: segments per batch (default 100).
    :param limit: at most this many segments.
    :param max_used_status_last_updated_time: only segments marked unused at or before this ISO instant (templated).
    :param dry_run: force a dry run (True) or a real run (False); None: as the spec (or the trigger form) says.
    :param skip_locked_intervals: lock only what is deleted and skip intervals other tasks hold.
    :param lock_timeout_s: seconds to wait in-process for the lock before handing the slot back and retrying.
    :param metadata_conn_id: Connection to the database with the ``druidflow_*`` tables.
    :param deep_storage_conn_id: Connection naming the deep storage (a directory or ``s3://``).
    """

    template_fields: Sequence[str] = ("spec", "data_source", "interval", "versions", "max_used_status_last_updated_time")
    template_ext: Sequence[str] = (".json",)
    template_fields_renderers = {"spec": "json"}
    ui_color = "#e8564d"
    _step_name = "kill"
    _heartbeat = False  # the engine renews its own lease while it runs

    def __init__(
        self,
        *,
        spec: dict[str, Any] | str | None = None,
        data_source: str | None = None,
        interval: str | None = None,
        versions: list[str] | None = None,
        batch_size: int | None = None,
        limit: int | None = None,
        max_used_status_last_updated_time: str | None = None,
        dry_run: bool | None = None,
        skip_locked_intervals: bool | None = None,
        lock_timeout_s: float = 0.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("render_template_as_native_obj", True)
        _retry_on_lock(kwargs)
        super().__init__(**kwargs)
        self.spec = spec
        self.data_source = data_source
        self.interval = interval
        self.versions = versions
        self.batch_size = batch_size
        self.limit = limit
        self.max_used_status_last_updated_time = max_used_status_last_updated_time
        # Not ``self.dry_run``: that is BaseOperator's dry_run() method, which an attribute would shadow.
        self.dry_run_arg = dry_run
        self.skip_locked_intervals = skip_locked_intervals
        self.lock_timeout_s = lock_timeout_s
        self._kill_task_id: str | None = None

    def _druid_task_id(self) -> str | None:
        return self._kill_task_id

    def resolve(self, context: Context) -> tuple[dict[str, Any], bool | None, bool]:
        """``(kill task JSON, dry_run override, from the trigger form)`` for this run."""
        if self.spec is not None and not (isinstance(self.spec, str) and not self.spec.strip()):
            return as_dict(self.spec, "spec"), self.dry_run_arg, False
        if self.data_source or self.interval:
            fields = {
                "type": "kill",
                "dataSource": self.data_source,
                "interval": self.interval,
                "versions": self.versions or None,
                "batchSize": self.batch_size,
                "limit": self.limit,
                "maxUsedStatusLastUpdatedTime": self.max_used_status_last_updated_time,
            }
            return {k: v for k, v in fields.items() if v is not None}, self.dry_run_arg, False
        from druidflow.airflow.kill_form import kill_spec_from_form

        try:
            spec, form_dry_run = kill_spec_from_form(dict(context.get("params") or {}))
        except SpecError as exc:
            raise user_error(
                f"Trigger form field '{exc.path}' is invalid: {exc.reason} (got {exc.value!r}). Fix it and trigger "
                "a new run; nothing was locked or deleted.",
                exc,
            ) from None
        return spec, (form_dry_run if self.dry_run_arg is None else self.dry_run_arg), True

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.tasks.kill_cli import format_kill_report

        spec, dry_run, from_form = self.resolve(context)
        spec.setdefault("id", _stable_task_id(spec, context))
        self._kill_task_id = str(spec["id"])

        def work():
            from druidflow.tasks import kill

            return kill.run(
                spec,
                self.runtime,
                dry_run=dry_run,
                skip_locked_intervals=self.skip_locked_intervals,
                lock_timeout_s=self.lock_timeout_s,
            )

        try:
            report = self._run(context, work)
        except AirflowFailException as exc:
            cause = druidflow_cause(exc)
            if from_form and isinstance(cause, SpecError) and not (context.get("params") or {}).get("spec"):
                from druidflow.airflow.kill_form import form_field_for

                field = form_field_for(cause.path)
                if field:
                    raise user_error(f"{exc} (trigger form field '{field}')", cause) from None
            raise
        self.log.info("%s", format_kill_report(report).rstrip())
        if report.dry_run and from_form:
            self.log.info("This was a dry run: trigger again with 'confirm' ticked to delete what is listed.")
        return report.druid_report()  # Druid's killUnusedSegments report; Druidflow's detail under druidflowDetails

    def _airflow_error(self, exc: DruidflowError, context: Context, druid_task_id: str | None) -> AirflowException:
        if not isinstance(exc, LockRevokedError):
            return super()._airflow_error(exc, context, druid_task_id)
        report = getattr(exc, "report", None)
        done = (
            f" It deleted {report.num_segments_killed} segment(s) in {report.num_batches_processed} batch(es) first"
            if report is not None
            else ""
        )
        message = (
            f"kill {druid_task_id}: its lock was revoked by a higher-priority task ({exc}).{done}; nothing is left "
            "half-deleted. Trigger a new run once the other task is done to delete the rest."
        )
        self._mark_failed(druid_task_id, message)
        return AirflowFailException(message)

    def _mark_failed(self, druid_task_id: str | None, message: str) -> None:
        if not druid_task_id:
            return
        try:
            from druidflow.tasks import kill

            kill.fail(druid_task_id, message, self.runtime)
        except Exception:
            self.log.exception("Could not mark kill %s as failed", druid_task_id)


def _stable_task_id(spec: dict[str, Any], context: Context) -> str:
    """``kill_<dataSource>_<hash of the Airflow dag/run/task/map index>``: the same on every retry of the task."""
    ti = context.get("ti") if context else None
    parts = [
        str(getattr(context.get("dag"), "dag_id", "") if context else ""),
        str(context.get("run_id", "") if context else ""),
        str(getattr(ti, "task_id", "")),
        str(getattr(ti, "map_index", "")),
        json.dumps(spec, sort_keys=True, default=str),
    ]
    digest = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:12]
    return f"kill_{spec.get('dataSource') or 'unknown'}_{digest}"


class _MarkOperator(DruidflowStepOperator):
    template_fields: Sequence[str] = ("data_source", "interval", "segment_ids")
    _heartbeat = False

    def __init__(
        self,
        *,
        data_source: str,
        interval: str | None = None,
        segment_ids: list[str] | None = None,
        all_segments: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_source = data_source
        self.interval = interval
        self.segment_ids = segment_ids
        self.all_segments = all_segments

    def _druid_task_id(self) -> str | None:
        return None

    def _selection(self) -> dict[str, Any]:
        from druidflow.intervals import Interval

        given = [self.interval is not None, self.segment_ids is not None, bool(self.all_segments)]
        if sum(given) != 1:
            raise AirflowFailException(
                f"{self.task_id}: give exactly one of interval, segment_ids or all_segments=True (got {sum(given)})"
            )
        if self.interval is not None:
            return {"interval": Interval.parse(self.interval, "interval")}
        if self.segment_ids is not None:
            return {"segment_ids": list(self.segment_ids)}
        return {}


class MarkSegmentsUnusedOperator(_MarkOperator):
    """Mark used segments unused (Druid's mark-unused API): those lying entirely inside ``interval``, those of
    ``segment_ids``, or all of ``data_source`` with ``all_segments=True``. Files stay until a kill; returns the count.

    :param data_source: the dataSource (templated).
    :param interval: mark the segments lying entirely inside this ISO interval (templated).
    :param segment_ids: mark these segments (templated).
    :param all_segments: mark every segment of the dataSource.
    :param reason: why, stored with each segment (default ``dropped-by-user``).
    """

    _step_name = "mark_unused"

    def __init__(self, *, reason: str = "dropped-by-user", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        selection = self._selection()
        count = self._run(context, lambda: self.runtime.store.mark_unused(self.data_source, reason=self.reason, **selection))
        self.log.info("Marked %d segment(s) of %s unused (%s)", count, self.data_source, self.reason)
        return {"dataSource": self.data_source, "markedUnused": count}


class MarkSegmentsUsedOperator(_MarkOperator):
    """Mark unused segments used again (only those not overshadowed; never those a kill has claimed).

    :param data_source: the dataSource (templated).
    :param interval: mark the segments lying entirely inside this ISO interval (templated).
    :param segment_ids: mark these segments (templated).
    :param all_segments: mark every segment of the dataSource.
    """

    _step_name = "mark_used"

    def execute(self, context: Context) -> dict[str, Any]:
        selection = self._selection()
        count = self._run(context, lambda: self.runtime.store.mark_used(self.data_source, **selection))
        self.log.info("Marked %d segment(s) of %s used", count, self.data_source)
        return {"dataSource": self.data_source, "markedUsed": count}


class _RetentionOperator(DruidflowStepOperator):
    template_fields: Sequence[str] = ("config", "dry_run_arg", "data_sources")
    _heartbeat = False

    def __init__(
        self,
        *,
        config: dict[str, Any] | str | None = None,
        dry_run: bool | str = False,
        data_sources: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("render_template_as_native_obj", True)
        super().__init__(**kwargs)
        self.config = config
        # Not ``self.dry_run``: that is BaseOperator's dry_run() method, which an attribute would shadow.
        self.dry_run_arg = dry_run
        self.data_sources = data_sources

    def _druid_task_id(self) -> str | None:
        return None

    def _dry(self) -> bool:
        value = self.dry_run_arg
        return value.strip().lower() == "true" if isinstance(value, str) else bool(value)

    def load_config(self):
        """The retention configuration: ``config``, else the Variable ``druidflow_retention``, else the JSON file
        named by ``$DRUIDFLOW_RETENTION_CONFIG``, else the defaults (rules applied, no kill)."""
        from druidflow.tasks.auto_kill import RetentionConfig

        data: Any = self.config
        source = "config"
        if data is None:
            from airflow.sdk import Variable

            data, source = Variable.get(CONFIG_VARIABLE, default=None), f"Variable {CONFIG_VARIABLE}"
        if data is None and os.environ.get(CONFIG_FILE_ENV):
            path = Path(os.environ[CONFIG_FILE_ENV])
            data, source = path.read_text(), str(path)
        try:
            return RetentionConfig.load(data, CONFIG_VARIABLE)
        except SpecError as exc:
            raise user_error(f"The retention configuration ({source}) is invalid: {exc}", exc) from None


class ApplyRetentionRulesOperator(_RetentionOperator):
    """Apply each dataSource's retention rules: mark unused the used segments a drop rule matches (files stay).

    Skipped when the configuration says ``"applyRules": false``. Returns one result per dataSource.

    :param config: the retention configuration (dict or JSON); default: the ``druidflow_retention`` Variable.
    :param dry_run: only report what would be marked unused (templated).
    :param data_sources: only these dataSources (default: every one with rules).
    """

    _step_name = "apply_retention_rules"

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from druidflow import retention

        if not self.load_config().apply_rules:
            self.log.info("Retention rules are switched off (applyRules: false)")
            return []
        results = self._run(
            context, lambda: retention.apply_all_rules(self.runtime.store, self.data_sources, dry_run=self._dry())
        )
        for r in results:
            self.log.info("%s: %s %d of %d used segment(s) unused", r.data_source,
                          "would mark" if r.dry_run else "marked", r.marked_unused, r.used_segments)
        return [r.model_dump() for r in results]


class ScheduledKillOperator(_RetentionOperator):
    """Kill unused segments marked unused longer than the buffer period ago, for the dataSources the retention
    configuration enables (nothing at all by default). Intervals other tasks hold are skipped and reported.

    :param config: the retention configuration (dict or JSON); default: the ``druidflow_retention`` Variable.
    :param dry_run: only report what would be deleted (templated).
    :param data_sources: only these dataSources (default: all).
    """

    _step_name = "scheduled_kill"
    ui_color = "#e8564d"

    def __init__(self, **kwargs: Any) -> None:
        _retry_on_lock(kwargs)
        super().__init__(**kwargs)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from druidflow.tasks.auto_kill import run_scheduled_kills

        config = self.load_config().kill
        results = self._run(
            context, lambda: run_scheduled_kills(self.runtime, config, data_sources=self.data_sources, dry_run=self._dry())
        )
        if not results:
            self.log.info("Nothing to kill (the scheduled kill is enabled for: %s)",
                          ", ".join(sorted(k for k, v in config.data_sources.items() if v.enabled)) or
                          ("every dataSource" if config.enabled else "no dataSource"))
        return results
