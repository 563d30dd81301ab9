"""``druidflow_same_interval_merge``: Druid's ``same_interval_merge`` task, triggered by hand.

Merges every used segment overlapping ``interval`` into one segment (as ``merge`` does), at priority 25::

    airflow dags trigger druidflow_same_interval_merge --conf '{"data_source": "wiki", "interval": "2024-01-01/P1W",
                                                                "aggregations": [{"type": "longSum", ...}]}'
"""

from druidflow.airflow.task_dags import druid_task_dag

dag = druid_task_dag(
    "druidflow_same_interval_merge", "same_interval_merge", "druidflow.airflow.merge_form:SAME_INTERVAL_MERGE_FORM",
    doc_md=__doc__,
)
