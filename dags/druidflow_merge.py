"""``druidflow_merge``: Druid's ``merge`` task, triggered by hand.

Merges the given segments of one dataSource into one segment, re-applying the combining form of ``aggregations`` and
(with ``rollup``, the default) combining rows with equal timestamp and dimensions, at priority 25; the inputs become
unused (``overshadowed-by-merge``)::

    airflow dags trigger druidflow_merge --conf '{"spec": {"type": "merge", "dataSource": "wiki", "segments": [...],
                                                            "aggregations": [...]}}'
"""

from druidflow.airflow.task_dags import druid_task_dag

dag = druid_task_dag("druidflow_merge", "merge", "druidflow.airflow.merge_form:MERGE_FORM", doc_md=__doc__)
