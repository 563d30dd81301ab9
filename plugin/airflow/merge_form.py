"""The trigger forms of ``druidflow_append``, ``druidflow_merge`` and ``druidflow_same_interval_merge``.

``segments`` takes the full segment objects, as Druid's tasks do (``druidflow segments <dataSource> --json`` prints
them). A whole task JSON in ``spec`` wins over the fields (see :mod:`druidflow.airflow.trigger_form`).
"""

from __future__ import annotations

from druidflow.airflow.trigger_form import FormField, TriggerForm, data_source_field

_SEGMENTS = FormField(
    "segments", "segments", "Segments", kind="objects", required=True,
    description="The full segment objects to combine, e.g. from `druidflow segments wiki --json`; all of one "
    "dataSource, unsharded, and every used segment of their umbrella interval.",
)
_INTERVAL = FormField("interval", "interval", "Interval", required=True,
                      description="ISO interval: every used segment overlapping it is merged into one.")


def _aggregations(required: bool) -> FormField:
    return FormField(
        "aggregations", "aggregations", "Aggregations", kind="objects", required=required,
        description='The metrics, e.g. `[{"type": "longSum", "name": "count", "fieldName": "count"}]`; their combining '
        "form is re-applied." + ("" if required else " Empty = the segments' own aggregators."),
    )


_ROLLUP = FormField("rollup", "rollup", "Rollup", kind="boolean", default=True,
                    description="Combine rows with equal timestamp and dimensions.")
_INDEX_SPEC = FormField("index_spec", "indexSpec", "indexSpec", kind="object",
                        description='How the output is compressed, e.g. `{"dimensionCompression": "zstd"}`.')

APPEND_FORM = TriggerForm(
    task_type="append",
    spec_title="Druid append task JSON",
    fields=(data_source_field(), _SEGMENTS, _aggregations(False), _INDEX_SPEC),
)
MERGE_FORM = TriggerForm(
    task_type="merge",
    spec_title="Druid merge task JSON",
    fields=(data_source_field(), _SEGMENTS, _aggregations(True), _ROLLUP, _INDEX_SPEC),
)
SAME_INTERVAL_MERGE_FORM = TriggerForm(
    task_type="same_interval_merge",
    spec_title="Druid same_interval_merge task JSON",
    fields=(data_source_field(), _INTERVAL, _aggregations(True), _ROLLUP, _INDEX_SPEC),
)
