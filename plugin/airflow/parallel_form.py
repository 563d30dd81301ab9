"""The trigger form of ``druidflow_index_parallel``: a whole Druid ``index_parallel`` task JSON."""

from __future__ import annotations

from druidflow.airflow.trigger_form import TriggerForm

PARALLEL_FORM = TriggerForm(
    task_type="index_parallel",
    fields=(),
    spec_title="Druid index_parallel task JSON",
    spec_description=(
        "A whole Druid index_parallel task (Druid's native parallel batch spec). Its input is split once; each split "
        "and each (time chunk, partition) runs as its own mapped task."
    ),
)
