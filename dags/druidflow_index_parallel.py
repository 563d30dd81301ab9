"""``druidflow_index_parallel``: run one Druid ``index_parallel`` task (native parallel batch), triggered by hand.

    airflow dags trigger druidflow_index_parallel --conf '{"spec": {"type": "index_parallel", "spec": {...}}}'

The input is split once (files grouped by ``splitHintSpec``, big line-oriented files cut into byte ranges); each split
builds partial segments as one mapped task (``partial_segments``), and each (time chunk, partition) is merged from the
partials as one mapped task (``merge_segments``), so the work spreads over every worker of the executor (Celery
workers in docker-compose.yaml). One publish makes the whole task visible at once.

Connections: ``druidflow_metadata`` and ``druidflow_deep_storage`` (shared by every worker: S3, or a shared
directory). Parsing this file only builds the DAG.
"""

from druidflow.airflow.task_dags import druid_task_dag

dag = druid_task_dag(
    "druidflow_index_parallel",
    "index_parallel",
    "druidflow.airflow.parallel_form:PARALLEL_FORM",
    group_id="index_parallel",
    description="Druid index_parallel task: split, partial segments (mapped), merge per (chunk, partition) (mapped), publish",
    doc_md=__doc__,
)
