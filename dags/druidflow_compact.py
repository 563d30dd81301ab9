"""``druidflow_compact``: run one Druid ``compact`` task, triggered by hand.

Trigger it from the UI (the form takes a whole compact task JSON, or a dataSource, an interval, a target row count
per segment and a segment granularity), or from the command line::

    airflow dags trigger druidflow_compact --conf '{"data_source": "wiki", "interval": "2024-01-01/2024-02-01",
                                                    "segment_granularity": "DAY", "target_rows_per_segment": 5000000}'
    airflow dags trigger druidflow_compact --conf '{"spec": {"type": "compact", "dataSource": "wiki", ...}}'

The compaction locks the interval at priority 25 (index tasks at 50 preempt it), reads only the visible segments,
publishes a new version that replaces them chunk by chunk, and marks the replaced segments unused
(``overshadowed-by-compaction``). Each successful run emits an Asset event for ``druidflow://<dataSource>``.

Connections: ``druidflow_metadata`` and ``druidflow_deep_storage``. Parsing this file touches no database or storage.
"""

from druidflow.airflow.task_dags import druid_task_dag

dag = druid_task_dag(
    "druidflow_compact",
    "compact",
    "druidflow.airflow.compact_form:COMPACT_FORM",
    group_id="compact",
    description="Druid compact task: validate, lock, plan, re-index (mapped per chunk), publish, release",
    doc_md=__doc__,
)
