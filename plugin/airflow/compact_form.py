"""The ``druidflow_compact`` trigger form: its Params, and the Druid compact task JSON built from them.

A run takes either a whole Druid ``compact`` task in the param ``spec`` (``airflow dags trigger druidflow_compact
--conf '{"spec": {"type": "compact", ...}}'``), or the common fields below, from which :func:`compact_spec_from_form`
writes one. When ``spec`` is given it wins. Shapes are checked here; the spec itself by the submit step, before any
lock is taken.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from druidflow.airflow.index_form import GRANULARITIES
from druidflow.exceptions import SpecError

#: Trigger-form field -> the spec path it fills (to name the form field in errors about the built spec).
FORM_FIELD_PATHS = {
    "data_source": "dataSource",
    "interval": "ioConfig.inputSpec.interval",
    "target_rows_per_segment": "tuningConfig.partitionsSpec.maxRowsPerSegment",
    "segment_granularity": "granularitySpec.segmentGranularity",
    "query_granularity": "granularitySpec.queryGranularity",
    "priority": "context.priority",
}

_KEEP = "keep"


def compact_params() -> dict[str, Any]:
    """The ``params`` of the ``druidflow_compact`` DAG (Airflow renders them as the trigger form)."""
    from airflow.sdk import Param

    whole = "Whole task JSON"
    common = "Common fields (used when no task JSON is given)"
    return {
        "spec": Param(
            None,
            type=["null", "object"],
            title="Druid compact task JSON",
            description_md="A whole Druid `compact` task, e.g. `{\"type\": \"compact\", \"dataSource\": \"wiki\", "
            "\"ioConfig\": {\"type\": \"compact\", \"inputSpec\": {\"type\": \"interval\", \"interval\": \"2024-01-01/2024-02-01\"}}}`. "
            "When given, it is used as is and the fields below are ignored.",
            section=whole,
        ),
        "data_source": Param(None, type=["null", "string"], title="dataSource", section=common,
                             description="The Druid dataSource to compact."),
        "interval": Param(None, type=["null", "string"], title="Interval", section=common,
                          description="ISO interval to compact, e.g. 2024-01-01/2024-01-08 or 2024-01-01/P1W. It is "
                          "widened to cover every segment visible in it."),
        "target_rows_per_segment": Param(None, type=["null", "integer"], minimum=1, title="Target rows per segment",
                                         section=common,
                                         description="maxRowsPerSegment of the output (dynamic partitioning); empty = 5,000,000."),
        "segment_granularity": Param(_KEEP, enum=[_KEEP, *GRANULARITIES], title="Segment granularity", section=common,
                                     description="'keep' keeps the segments' own intervals; e.g. DAY turns HOUR segments into days."),
        "query_granularity": Param(_KEEP, enum=[_KEEP, *GRANULARITIES], title="Query granularity", section=common,
                                   description="'keep' uses the finest query granularity of the input segments."),
        "priority": Param(25, type="integer", title="Lock priority", section=common,
                          description="25 by default, so index (50) and realtime (75) tasks preempt the compaction."),
    }


def compact_spec_from_form(params: Mapping[str, Any]) -> dict[str, Any]:
    """The Druid compact task JSON a trigger form describes: ``params["spec"]`` if given, else one built from the fields.

    Raises :class:`~druidflow.exceptions.SpecError` naming the form field when a required field is missing or malformed.
    """
    spec = params.get("spec")
    if isinstance(spec, str) and spec.strip():
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise SpecError("spec", spec, f"is not valid JSON: {exc}") from None
    if spec:
        if not isinstance(spec, Mapping):
            raise SpecError("spec", spec, "must be a JSON object (a whole Druid compact task)")
        return dict(spec)

    data_source = _text(params, "data_source")
    if not data_source:
        raise SpecError("data_source", params.get("data_source"), "is required when no task JSON ('spec') is given")
    interval = _text(params, "interval")
    if not interval:
        raise SpecError("interval", params.get("interval"), "is required when no task JSON ('spec') is given")
    out: dict[str, Any] = {
        "type": "compact",
        "dataSource": data_source,
        "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": interval}},
    }
    granularity: dict[str, Any] = {}
    for field, key in (("segment_granularity", "segmentGranularity"), ("query_granularity", "queryGranularity")):
        value = _text(params, field)
        if value and value.lower() != _KEEP:
            if value.upper() not in GRANULARITIES:
                raise SpecError(field, value, f"must be '{_KEEP}' or one of {GRANULARITIES}")
            granularity[key] = value.upper()
    if granularity:
        out["granularitySpec"] = granularity
    rows = params.get("target_rows_per_segment")
    if rows not in (None, ""):
        if isinstance(rows, bool) or not str(rows).strip().isdigit() or int(rows) <= 0:
            raise SpecError("target_rows_per_segment", rows, "must be a positive whole number")
        out["tuningConfig"] = {"type": "index_parallel", "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": int(rows)}}
    priority = params.get("priority")
    if priority not in (None, ""):
        if isinstance(priority, bool) or not str(priority).strip().lstrip("-").isdigit():
            raise SpecError("priority", priority, "must be a whole number")
        out["context"] = {"priority": int(priority)}
    return out


def form_field_for(spec_path: str) -> str | None:
    """The trigger-form field that fills ``spec_path`` (a dotted path in the built spec), if any."""
    for field, prefix in FORM_FIELD_PATHS.items():
        if spec_path == prefix or spec_path.startswith(prefix + ".") or spec_path.startswith(prefix + "["):
            return field
    return None


def _text(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value))
