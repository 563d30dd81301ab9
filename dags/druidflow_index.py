"""``druidflow_index``: run one Druid ``index`` task, triggered by hand.

Trigger it from the UI (the form takes a whole task JSON or the common fields), or from the command line::

    airflow dags trigger druidflow_index --conf '{"spec": {"type": "index", "spec": {...}}}'
    airflow dags trigger druidflow_index --conf '{"data_source": "wiki", "input": ["/data/wiki.json"],
                                                  "intervals": ["2024-01-01/2024-01-02"]}'

Each successful run emits an Asset event for ``druidflow://<dataSource>`` (extra: the published segment ids), so
downstream DAGs can use ``schedule=[Asset("druidflow://wiki")]``.

Connections: ``druidflow_metadata`` (the database holding the druidflow_* tables) and ``druidflow_deep_storage``.
Parsing this file only builds the DAG: no database, storage or engine module is touched.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from druidflow.airflow.index_form import index_params
from druidflow.airflow.task_groups import index_task_group

with DAG(
    dag_id="druidflow_index",
    description="Druid native batch index task: validate, lock, partition, build (mapped), publish, release",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params=index_params(),
    render_template_as_native_obj=True,
    max_active_tasks=32,
    default_args={"owner": "druidflow", "retry_delay": timedelta(seconds=10)},
    tags=["druidflow", "druid", "index"],
    doc_md=__doc__,
) as dag:
    index_task_group(spec=None, group_id="index")
