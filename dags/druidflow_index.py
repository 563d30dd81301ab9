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

from druidflow.airflow.task_dags import druid_task_dag

dag = druid_task_dag(
    "druidflow_index",
    "index",
    "druidflow.airflow.index_form:INDEX_FORM",
    group_id="index",
    description="Druid native batch index task: validate, lock, partition, build (mapped), publish, release",
    doc_md=__doc__,
)
