"""The trigger form of ``druidflow_index_hadoop``: a whole Druid ``index_hadoop`` task JSON."""

from __future__ import annotations

from druidflow.airflow.trigger_form import TriggerForm

HADOOP_FORM = TriggerForm(
    task_type="index_hadoop",
    fields=(),
    spec_title="Druid index_hadoop task JSON",
    spec_description=(
        "A whole Druid Hadoop batch ingestion task (ioConfig type hadoop with a static or granularity inputSpec, "
        "tuningConfig type hadoop). Its build runs as one Spark job (local mode unless jobProperties name spark.master)."
    ),
)
