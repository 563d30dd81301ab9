"""The ``druidflow_index`` trigger form: its fields, and the Druid index task JSON built from them.

A run is configured either with a whole Druid task JSON in the param ``spec`` (``airflow dags trigger
druidflow_index --conf '{"spec": {...}}'``), or with the common fields below, from which a modern-form ``index`` task
is written (see :mod:`druidflow.airflow.trigger_form`). The form's types and enums are checked by Airflow when the run
is triggered; everything else by the first task of the run, before any work starts.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any

from druidflow.airflow.trigger_form import FormField, TriggerForm
from druidflow.exceptions import SpecError

GRANULARITIES = ["NONE", "SECOND", "MINUTE", "FIVE_MINUTE", "TEN_MINUTE", "FIFTEEN_MINUTE", "THIRTY_MINUTE",
                 "HOUR", "SIX_HOUR", "EIGHT_HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR", "ALL"]
INPUT_FORMATS = ["json", "csv", "tsv", "parquet"]

_SCHEMA = "spec.dataSchema"


def _skeleton() -> dict[str, Any]:
    return {
        "type": "index",
        "spec": {
            "dataSchema": {"timestampSpec": {}, "dimensionsSpec": {"dimensions": []}, "granularitySpec": {"type": "uniform"}},
            "ioConfig": {"type": "index"},
            "tuningConfig": {"type": "index"},
        },
    }


def _input_format(name: str) -> dict[str, Any]:
    return {"type": name, "findColumnsFromHeader": True} if name in ("csv", "tsv") else {"type": name}


def _with_metrics(spec: dict[str, Any]) -> dict[str, Any]:
    spec["spec"]["dataSchema"].setdefault("metricsSpec", [])  # an emptied metrics field means no metrics
    return spec


INDEX_FORM = TriggerForm(
    task_type="index",
    spec_title="Druid index task JSON",
    spec_description="A whole Druid `index` task, e.g. `{\"type\": \"index\", \"spec\": {...}}`. "
    "When given, it is used as is and the fields below are ignored.",
    skeleton=_skeleton,
    finish=lambda spec, params: _with_metrics(spec),
    fields=(
        FormField("data_source", f"{_SCHEMA}.dataSource", "dataSource", required=True,
                  description="Name of the Druid dataSource to write."),
        FormField("input", "spec.ioConfig.inputSource", "Input paths or URIs", kind="lines", required=True, default=[],
                  description="One per line: a local file, a directory (all files in it), a glob (`/data/*.json`), "
                  "`s3://bucket/key`, `s3://bucket/prefix/` or `http(s)://...`.",
                  convert=lambda inputs: input_source_for(inputs)),
        FormField("input_format", "spec.ioConfig.inputFormat", "Input format", default="json", enum=INPUT_FORMATS,
                  description="csv/tsv read column names from the header row.", convert=_input_format),
        FormField("timestamp_column", f"{_SCHEMA}.timestampSpec.column", "Timestamp column", default="timestamp"),
        FormField("timestamp_format", f"{_SCHEMA}.timestampSpec.format", "Timestamp format", default="auto",
                  description="auto, iso, posix, millis, micro, nano or a Joda pattern."),
        FormField("dimensions", f"{_SCHEMA}.dimensionsSpec.dimensions", "Dimensions", kind="lines", default=[],
                  description="One per line; empty = every input column that is not the timestamp or a metric input "
                  "(schemaless)."),
        FormField("metrics", f"{_SCHEMA}.metricsSpec", "Metrics (aggregators)", kind="objects",
                  default=[{"type": "count", "name": "count"}],
                  description='Druid `metricsSpec`, e.g. `[{"type": "count", "name": "count"}, '
                  '{"type": "longSum", "name": "added", "fieldName": "added"}]`.'),
        FormField("segment_granularity", f"{_SCHEMA}.granularitySpec.segmentGranularity", "Segment granularity",
                  default="DAY", enum=GRANULARITIES),
        FormField("query_granularity", f"{_SCHEMA}.granularitySpec.queryGranularity", "Query granularity",
                  default="NONE", enum=GRANULARITIES),
        FormField("rollup", f"{_SCHEMA}.granularitySpec.rollup", "Rollup", kind="boolean", default=True),
        FormField("intervals", f"{_SCHEMA}.granularitySpec.intervals", "Intervals", kind="lines", default=[],
                  description="ISO intervals, one per line (2024-01-01/2024-01-02); empty = from the data."),
        FormField("append", "spec.ioConfig.appendToExisting", "Append to existing", kind="boolean", default=False,
                  description="Add new segments next to the existing ones instead of replacing them."),
    ),
)


def index_params() -> dict[str, Any]:
    """The ``params`` of the ``druidflow_index`` DAG (Airflow renders them as the trigger form)."""
    return INDEX_FORM.params()


def index_spec_from_form(params: Mapping[str, Any]) -> dict[str, Any]:
    """The Druid index task JSON a trigger form describes: ``params["spec"]`` if given, else one built from the fields.

    Raises :class:`~druidflow.exceptions.SpecError` naming the form field when a required field is missing or
    malformed. Only the shape is checked here; the engine validates the spec itself.
    """
    return INDEX_FORM.spec_from_form(params)


def form_field_for(spec_path: str) -> str | None:
    """The trigger-form field that fills ``spec_path`` (a dotted path in the built spec), if any."""
    return INDEX_FORM.field_for(spec_path)


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


def _kind(uri: str) -> str:
    if uri.startswith("s3://"):
        return "s3"
    if uri.startswith(("http://", "https://")):
        return "http"
    return "local"
