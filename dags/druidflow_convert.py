"""``druidflow_convert``: Druid's ``convert_segment`` task, triggered by hand.

Rewrites the used segments of an interval with a new ``indexSpec``; the new segments keep interval and partition and
get the old version with ``_converted`` appended (so they overshadow the old ones). Without ``force`` only segments of
an older binary version are converted. ``validate`` (default on) compares old and new row by row and publishes nothing
on any difference::

    airflow dags trigger druidflow_convert --conf '{"data_source": "wiki", "interval": "2024-01-01/P1W", "force": true,
                                                    "index_spec": {"dimensionCompression": "zstd"}}'
"""

from druidflow.airflow.task_dags import druid_task_dag

dag = druid_task_dag("druidflow_convert", "convert_segment", "druidflow.airflow.convert_form:CONVERT_FORM",
                     group_id="convert", doc_md=__doc__)
