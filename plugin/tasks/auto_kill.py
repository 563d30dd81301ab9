"""The scheduled kill's configuration (Druid's ``druid.coordinator.kill.*``) and the run over every dataSource.

Off unless the user turns it on, globally or per dataSource::

    {
      "applyRules": true,
      "kill": {
        "enabled": false,
        "bufferPeriod": "P30D",
        "durationToRetain": null,
        "maxSegments": null,
        "batchSize": 100,
        "dataSources": {"wiki": {"enabled": true, "bufferPeriod": "P7D"}}
      }
    }

``bufferPeriod``: kill only segments marked unused at least this long ago (Druid's ``bufferPeriod``, P30D).
``durationToRetain``: kill only segments whose interval ended at least this long ago (Druid's default P90D; null
here means any interval). ``maxSegments``: at most this many segments per dataSource and run (null: no cap).
A ``dataSources`` entry overrides any of these for one dataSource.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional

from pydantic import Field

from druidflow.exceptions import DruidflowError
from druidflow.intervals import now_ms
from druidflow.retention import PeriodText
from druidflow.specs.base import DruidModel
from druidflow.tasks import kill as kill_task
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)


class KillSettings(DruidModel):
    """Per-dataSource overrides of :class:`AutoKillConfig` (unset fields inherit)."""

    enabled: Optional[bool] = None
    buffer_period: Optional[PeriodText] = None
    duration_to_retain: Optional[PeriodText] = None
    max_segments: Optional[int] = Field(default=None, gt=0)
    batch_size: Optional[int] = Field(default=None, gt=0)


class AutoKillConfig(DruidModel):
    """Whether, and how, the scheduled run kills unused segments."""

    enabled: bool = False
    buffer_period: PeriodText = kill_task.DEFAULT_BUFFER_PERIOD
    duration_to_retain: Optional[PeriodText] = None
    max_segments: Optional[int] = Field(default=None, gt=0)
    batch_size: int = Field(default=100, gt=0)
    data_sources: dict[str, KillSettings] = Field(default_factory=dict)

    def settings_for(self, data_source: str) -> Optional[KillSettings]:
        """The effective settings of ``data_source``, or None when the scheduled kill is off for it."""
        own = self.data_sources.get(data_source, KillSettings())
        enabled = self.enabled if own.enabled is None else own.enabled
        if not enabled:
            return None
        return KillSettings(
            enabled=True,
            buffer_period=own.buffer_period or self.buffer_period,
            duration_to_retain=own.duration_to_retain or self.duration_to_retain,
            max_segments=own.max_segments or self.max_segments,
            batch_size=own.batch_size or self.batch_size,
        )


class RetentionConfig(DruidModel):
    """The whole ``druidflow_retention`` configuration."""

    apply_rules: bool = True
    kill: AutoKillConfig = Field(default_factory=AutoKillConfig)

    @classmethod
    def load(cls, data: Any, path: str = "druidflow_retention") -> RetentionConfig:
        """From a dict, JSON text, or None/empty (everything default: rules applied, no kill)."""
        if data is None or (isinstance(data, str) and not data.strip()):
            return cls()
        return cls.parse(data, path)


def run_scheduled_kills(
    rt: Runtime,
    config: AutoKillConfig,
    *,
    data_sources: Optional[list[str]] = None,
    dry_run: bool = False,
    clock: Callable[[], int] = now_ms,
) -> list[dict[str, Any]]:
    """Run :func:`druidflow.tasks.kill.scheduled_kill` for every dataSource the config enables.

    One dataSource's failure does not stop the others; once all ran, the first error is raised again (the
    results so far are logged). Returns one summary per dataSource that had unused segments.
    """
    results: list[dict[str, Any]] = []
    errors: list[DruidflowError] = []
    for ds in data_sources if data_sources is not None else rt.store.datasources():
        settings = config.settings_for(ds)
        if settings is None:
            continue
        try:
            report = kill_task.scheduled_kill(
                rt,
                ds,
                buffer_period=settings.buffer_period or kill_task.DEFAULT_BUFFER_PERIOD,
                duration_to_retain=settings.duration_to_retain,
                max_segments=settings.max_segments,
                batch_size=settings.batch_size or 100,
                dry_run=dry_run,
                clock=clock,
            )
        except DruidflowError as exc:
            log.error("scheduled kill of %s failed: %s", ds, exc)
            errors.append(exc)
            failed: dict[str, Any] = {"dataSource": ds, "status": "FAILED", "error": str(exc)}
            partial = getattr(exc, "report", None)
            if partial is not None:
                failed["report"] = partial.druid_report()
            results.append(failed)
            continue
        if report is None:
            continue
        log.info("%s", report.summary())
        results.append({"dataSource": ds, "status": report.status, "report": report.druid_report()})
    if errors:
        raise errors[0]
    return results
