"""The ``druidflow_compact`` trigger form: its fields, and the Druid compact task JSON built from them.

A run takes either a whole Druid ``compact`` task in the param ``spec`` (``airflow dags trigger druidflow_compact
--conf '{"spec": {"type": "compact", ...}}'``), or the fields below (see :mod:`druidflow.airflow.trigger_form`).
Shapes are checked here; the spec itself by the submit step, before any lock is taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from druidflow.airflow.index_form import GRANULARITIES
from druidflow.airflow.trigger_form import FormField, TriggerForm, data_source_field

_KEEP = "keep"


def _with_partitions(spec: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    tuning = spec.get("tuningConfig")
    if tuning is not None:
        spec["tuningConfig"] = {"type": "index_parallel", "partitionsSpec": {"type": "dynamic", **tuning["partitionsSpec"]}}
    return spec


COMPACT_FORM = TriggerForm(
    task_type="compact",
    spec_title="Druid compact task JSON",
    spec_description="A whole Druid `compact` task, e.g. `{\"type\": \"compact\", \"dataSource\": \"wiki\", "
    "\"ioConfig\": {\"type\": \"compact\", \"inputSpec\": {\"type\": \"interval\", \"interval\": \"2024-01-01/2024-02-01\"}}}`. "
    "When given, it is used as is and the fields below are ignored.",
    skeleton=lambda: {"type": "compact", "ioConfig": {"type": "compact", "inputSpec": {"type": "interval"}}},
    finish=_with_partitions,
    fields=(
        data_source_field("The Druid dataSource to compact."),
        FormField("interval", "ioConfig.inputSpec.interval", "Interval", required=True,
                  description="ISO interval to compact, e.g. 2024-01-01/2024-01-08 or 2024-01-01/P1W. It is widened to "
                  "cover every segment visible in it."),
        FormField("target_rows_per_segment", "tuningConfig.partitionsSpec.maxRowsPerSegment", "Target rows per segment",
                  kind="integer", minimum=1,
                  description="maxRowsPerSegment of the output (dynamic partitioning); empty = 5,000,000."),
        FormField("segment_granularity", "granularitySpec.segmentGranularity", "Segment granularity", default=_KEEP,
                  enum=[_KEEP, *GRANULARITIES], omit=(_KEEP,),
                  description="'keep' keeps the segments' own intervals; e.g. DAY turns HOUR segments into days."),
        FormField("query_granularity", "granularitySpec.queryGranularity", "Query granularity", default=_KEEP,
                  enum=[_KEEP, *GRANULARITIES], omit=(_KEEP,),
                  description="'keep' uses the finest query granularity of the input segments."),
        FormField("priority", "context.priority", "Lock priority", kind="integer", default=25,
                  description="25 by default, so index (50) and realtime (75) tasks preempt the compaction."),
    ),
)


def compact_params() -> dict[str, Any]:
    """The ``params`` of the ``druidflow_compact`` DAG (Airflow renders them as the trigger form)."""
    return COMPACT_FORM.params()


def compact_spec_from_form(params: Mapping[str, Any]) -> dict[str, Any]:
    """The Druid compact task JSON a trigger form describes; a SpecError names the form field."""
    return COMPACT_FORM.spec_from_form(params)


def form_field_for(spec_path: str) -> str | None:
    """The trigger-form field that fills ``spec_path`` (a dotted path in the built spec), if any."""
    return COMPACT_FORM.field_for(spec_path)
