"""``druidflow_append``: Druid's ``append`` task, triggered by hand.

Concatenates the given segments of adjacent intervals of one dataSource into one segment (no rollup), at priority 25,
and marks the inputs it overshadows unused (``overshadowed-by-append``). The form takes the segments (the full
objects, e.g. from ``druidflow segments wiki --json``) or a whole task JSON::

    airflow dags trigger druidflow_append --conf '{"spec": {"type": "append", "dataSource": "wiki", "segments": [...]}}'
"""

from druidflow.airflow.task_dags import druid_task_dag

dag = druid_task_dag("druidflow_append", "append", "druidflow.airflow.merge_form:APPEND_FORM", doc_md=__doc__)
