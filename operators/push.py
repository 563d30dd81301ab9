"""The realtime handoff as an Airflow task: hand off every due window of the pushed dataSources.

One run of :class:`PushHandoffOperator` is one pass of the realtime process (``druidflow realtime``) over the
configured dataSources: each bucket whose window closed (``windowPeriod`` + ``handoffDelay`` after its end) is indexed
and published exactly once, under an APPEND lock at priority 75 (see docs/stream-push.md). With ``drain`` it hands off
open windows too. The specs come from the operator's ``specs``, else the Variable ``druidflow_push_specs`` and the
folder ``DRUIDFLOW_PUSH_SPECS`` (the same sources the push endpoints read on the API server).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException

from druidflow.exceptions import DruidflowError
from druidflow.operators.base import DruidflowStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from druidflow.push.registry import PushRegistry


class PushHandoffOperator(DruidflowStepOperator):
    """Hand off the due windows of pushed dataSources; returns the handoffs and what is still pending.

    :param specs: realtime specs (a list); default: the Variable ``druidflow_push_specs`` and ``DRUIDFLOW_PUSH_SPECS``.
    :param data_sources: only these dataSources (default: every configured one).
    :param drain: hand off every spooled bucket, open windows included.
    """

    template_fields: Sequence[str] = ("specs", "data_sources", "drain")
    _step_name = "push handoff"
    _heartbeat = False  # each handoff keeps its own lock lease alive

    def __init__(self, *, specs: Any = None, data_sources: Any = None, drain: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs = specs
        self.data_sources = data_sources
        self.drain = drain

    def _registry(self) -> PushRegistry:
        from druidflow.push.registry import (
            VARIABLE_KEY,
            PushRegistry,
            spec_dir_from_env,
            specs_from_dir,
            specs_from_document,
        )

        if self.specs:
            items = self.specs if isinstance(self.specs, list) else [self.specs]
            return PushRegistry.of((f"specs[{i}]", s) for i, s in enumerate(items))
        from airflow.sdk import Variable

        found: list[tuple[str, Any]] = []
        directory = spec_dir_from_env()
        if directory is not None and directory.is_dir():
            found.extend(specs_from_dir(directory))
        found.extend(specs_from_document(Variable.get(VARIABLE_KEY, default=None)))
        return PushRegistry.of(found)

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.push import spool
        from druidflow.push.runner import RealtimeRunner

        registry = self._registry()
        for origin, error in registry.errors.items():
            self.log.warning("realtime spec %s not loaded: %s", origin, error)
        wanted = set(self.data_sources or registry.tasks)
        unknown = wanted - set(registry.tasks)
        if unknown:
            raise AirflowException(f"no realtime spec for {', '.join(sorted(unknown))}")
        rt = self.runtime
        handoffs: list[dict[str, Any]] = []
        for name in sorted(wanted):
            try:
                reports = RealtimeRunner(registry.tasks[name], rt).run_once(drain=bool(self.drain))
            except DruidflowError as exc:
                raise self._airflow_error(exc, context, None) from exc
            for report in reports:
                self.log.info("handed off %s %s: %d events, %d segments (task %s)", name, report.bucket, report.events,
                              len(report.segments), report.task_id)
                handoffs.append(report.to_json())
        pending = {s.data_source: s.events for s in spool.summary(rt.store.engine) if s.data_source in wanted}
        return {"handoffs": handoffs, "pendingEvents": pending}
