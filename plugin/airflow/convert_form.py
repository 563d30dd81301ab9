"""The ``druidflow_convert`` trigger form (a ``convert_segment`` task); a whole task JSON in ``spec`` wins."""

from __future__ import annotations

from druidflow.airflow.trigger_form import FormField, TriggerForm, data_source_field

CONVERT_FORM = TriggerForm(
    task_type="convert_segment",
    spec_title="Druid convert_segment task JSON",
    finish=lambda spec, params: {"indexSpec": {}, **spec},
    fields=(
        data_source_field(),
        FormField("interval", "interval", "Interval", required=True,
                  description="ISO interval: its used segments are rewritten."),
        FormField("index_spec", "indexSpec", "indexSpec", kind="object",
                  description='The new compression, e.g. `{"dimensionCompression": "zstd", "metricCompression": "lz4"}`; '
                  "empty = the defaults."),
        FormField("force", "force", "Force", kind="boolean", default=False,
                  description="Convert even segments whose binary version is current, or already converted."),
        FormField("validate", "validate", "Validate", kind="boolean", default=True,
                  description="Compare old and new segments row by row; any difference fails with nothing published."),
    ),
)
