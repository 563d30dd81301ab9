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

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from druidflow.airflow.compact_form import compact_params
from druidflow.airflow.compact_task_groups import compact_task_group

with DAG(
    dag_id="druidflow_compact",
    description="Druid compact task: validate, lock, plan, re-index (mapped per chunk), publish, release",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params=compact_params(),
    render_template_as_native_obj=True,
    max_active_tasks=32,
    default_args={"owner": "druidflow", "retry_delay": timedelta(seconds=10)},
    tags=["druidflow", "druid", "compact"],
    doc_md=__doc__,
) as dag:
    compact_task_group(spec=None, group_id="compact")
