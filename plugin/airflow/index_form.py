"""The ``druidflow_index`` trigger form: its Params, and the Druid index task JSON built from them.

A run is configured either with a whole Druid task JSON in the param ``spec`` (``airflow dags trigger
druidflow_index --conf '{"spec": {...}}'``), or with the common fields below, from which
:func:`index_spec_from_form` writes a modern-form ``index`` task. When ``spec`` is given it wins and the common fields
are ignored. The form's types and enums are checked by Airflow when the run is triggered; everything else (required
fields, the spec itself) by the first task of the run, before any work starts.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping
from typing import Any

from druidflow.exceptions import SpecError

GRANULARITIES = ["NONE", "SECOND", "MINUTE", "FIVE_MINUTE", "TEN_MINUTE", "FIFTEEN_MINUTE", "THIRTY_MINUTE",
                 "HOUR", "SIX_HOUR", "EIGHT_HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR", "ALL"]
INPUT_FORMATS = ["json", "csv", "tsv", "parquet"]

#: Trigger-form field -> the spec path it fills; used to name the form field in errors about the built spec.
FORM_FIELD_PATHS = {
    "data_source": "spec.dataSchema.dataSource",
    "input": "spec.ioConfig.inputSource",
    "input_format": "spec.ioConfig.inputFormat",
    "timestamp_column": "spec.dataSchema.timestampSpec.column",
    "timestamp_format": "spec.dataSchema.timestampSpec.format",
    "dimensions": "spec.dataSchema.dimensionsSpec.dimensions",
    "metrics": "spec.dataSchema.metricsSpec",
    "segment_granularity": "spec.dataSchema.granularitySpec.segmentGranularity",
    "query_granularity": "spec.dataSchema.granularitySpec.queryGranularity",
    "rollup": "spec.dataSchema.granularitySpec.rollup",
    "intervals": "spec.dataSchema.granularitySpec.intervals",
    "append": "spec.ioConfig.appendToExisting",
}


def index_params() -> dict[str, Any]:
    """The ``params`` of the ``druidflow_index`` DAG (Airflow renders them as the trigger form)."""
    from airflow.sdk import Param

    whole = "Whole task JSON"
    common = "Common fields (used when no task JSON is given)"
    return {
        "spec": Param(
            None,
            type=["null", "object"],
            title="Druid index task JSON",
            description_md="A whole Druid `index` task, e.g. `{\"type\": \"index\", \"spec\": {...}}`. "
            "When given, it is used as is and the fields below are ignored.",
            section=whole,
        ),
        "data_source": Param(None, type=["null", "string"], title="dataSource", section=common,
                             description="Name of the Druid dataSource to write."),
        "input": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Input paths or URIs",
            description_md="One per line: a local file, a directory (all files in it), a glob (`/data/*.json`), "
            "`s3://bucket/key`, `s3://bucket/prefix/` or `http(s)://...`.",
            section=common,
        ),
        "input_format": Param("json", enum=INPUT_FORMATS, title="Input format", section=common,
                              description="csv/tsv read column names from the header row."),
        "timestamp_column": Param("timestamp", type="string", title="Timestamp column", section=common),
        "timestamp_format": Param("auto", type="string", title="Timestamp format", section=common,
                                  description="auto, iso, posix, millis, micro, nano or a Joda pattern."),
        "dimensions": Param([], type="array", items={"type": "string"}, title="Dimensions", section=common,
                            description="One per line; empty = every input column that is not the timestamp or a "
                            "metric input (schemaless)."),
        "metrics": Param(
            [{"type": "count", "name": "count"}],
            type="array",
            items={"type": "object"},
            title="Metrics (aggregators)",
            description_md='Druid `metricsSpec`, e.g. `[{"type": "count", "name": "count"}, '
            '{"type": "longSum", "name": "added", "fieldName": "added"}]`.',
            section=common,
        ),
        "segment_granularity": Param("DAY", enum=GRANULARITIES, title="Segment granularity", section=common),
        "query_granularity": Param("NONE", enum=GRANULARITIES, title="Query granularity", section=common),
        "rollup": Param(True, type="boolean", title="Rollup", section=common),
        "intervals": Param([], type="array", items={"type": "string"}, title="Intervals", section=common,
                           description="ISO intervals, one per line (2024-01-01/2024-01-02); empty = from the data."),
        "append": Param(False, type="boolean", title="Append to existing", section=common,
                        description="Add new segments next to the existing ones instead of replacing them."),
    }


def index_spec_from_form(params: Mapping[str, Any]) -> dict[str, Any]:
    """The Druid index task JSON a trigger form describes: ``params["spec"]`` if given, else one built from the fields.

    Raises :class:`~druidflow.exceptions.SpecError` naming the form field when a required field is missing or
    malformed. Only the shape is checked here; the engine validates the spec itself.
    """
    spec = params.get("spec")
    if isinstance(spec, str) and spec.strip():
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise SpecError("spec", spec, f"is not valid JSON: {exc}") from None
    if spec:
        if not isinstance(spec, Mapping):
            raise SpecError("spec", spec, "must be a JSON object (a whole Druid task)")
        return dict(spec)

    data_source = _text(params, "data_source")
    if not data_source:
        raise SpecError("data_source", params.get("data_source"), "is required when no task JSON ('spec') is given")
    inputs = _lines(params, "input")
    if not inputs:
        raise SpecError("input", params.get("input"), "is required when no task JSON ('spec') is given: "
                        "give at least one path or URI")
    input_format = _text(params, "input_format") or "json"
    if input_format not in INPUT_FORMATS:
        raise SpecError("input_format", input_format, f"must be one of {INPUT_FORMATS}")
    metrics = params.get("metrics") or []
    if isinstance(metrics, str):
        try:
            metrics = json.loads(metrics)
        except json.JSONDecodeError as exc:
            raise SpecError("metrics", metrics, f"is not valid JSON: {exc}") from None
    if not isinstance(metrics, list) or not all(isinstance(m, Mapping) for m in metrics):
        raise SpecError("metrics", metrics, "must be a list of aggregator objects")

    granularity_spec: dict[str, Any] = {
        "type": "uniform",
        "segmentGranularity": _text(params, "segment_granularity") or "DAY",
        "queryGranularity": _text(params, "query_granularity") or "NONE",
        "rollup": bool(params.get("rollup", True)),
    }
    intervals = _lines(params, "intervals")
    if intervals:
        granularity_spec["intervals"] = intervals
    input_format_spec: dict[str, Any] = {"type": input_format}
    if input_format in ("csv", "tsv"):
        input_format_spec["findColumnsFromHeader"] = True

    return {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": data_source,
                "timestampSpec": {
                    "column": _text(params, "timestamp_column") or "timestamp",
                    "format": _text(params, "timestamp_format") or "auto",
                },
                "dimensionsSpec": {"dimensions": _lines(params, "dimensions")},
                "metricsSpec": [dict(m) for m in metrics],
                "granularitySpec": granularity_spec,
            },
            "ioConfig": {
                "type": "index",
                "inputSource": input_source_for(inputs),
                "inputFormat": input_format_spec,
                "appendToExisting": bool(params.get("append", False)),
            },
            "tuningConfig": {"type": "index"},
        },
    }


def input_source_for(inputs: list[str]) -> dict[str, Any]:
    """A Druid ``inputSource`` for a list of paths/URIs of one kind (local, ``s3://`` or ``http(s)://``)."""
    kinds = {_kind(i) for i in inputs}
    if len(kinds) > 1:
        raise SpecError("input", inputs, "mixes local paths, s3:// and http(s):// URIs; use one kind per run")
    kind = kinds.pop()
    if kind == "s3":
        prefixes = [i for i in inputs if i.endswith("/")]
        if prefixes and len(prefixes) != len(inputs):
            raise SpecError("input", inputs, "mixes s3 prefixes (ending in '/') and objects; use one or the other")
        return {"type": "s3", "prefixes": inputs} if prefixes else {"type": "s3", "uris": inputs}
    if kind == "http":
        return {"type": "http", "uris": inputs}
    if len(inputs) == 1:
        path = inputs[0].removeprefix("file://")
        if any(ch in path for ch in "*?["):
            return {"type": "local", "baseDir": posixpath.dirname(path) or ".", "filter": posixpath.basename(path)}
        if os.path.isdir(path):
            return {"type": "local", "baseDir": path, "filter": "*"}
    return {"type": "local", "files": [i.removeprefix("file://") for i in inputs]}


def form_field_for(spec_path: str) -> str | None:
    """The trigger-form field that fills ``spec_path`` (a dotted path in the built spec), if any."""
    for field, prefix in FORM_FIELD_PATHS.items():
        if spec_path == prefix or spec_path.startswith(prefix + ".") or spec_path.startswith(prefix + "["):
            return field
    return None


def _kind(uri: str) -> str:
    if uri.startswith("s3://"):
        return "s3"
    if uri.startswith(("http://", "https://")):
        return "http"
    return "local"


def _text(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value))


def _lines(params: Mapping[str, Any], key: str) -> list[str]:
    """A list-of-strings form field; a single string may hold several values, one per line or comma-separated."""
    value = params.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = value.replace(",", "\n").splitlines()
    if not isinstance(value, list):
        raise SpecError(key, value, "must be a list of strings")
    return [str(v).strip() for v in value if str(v).strip()]
