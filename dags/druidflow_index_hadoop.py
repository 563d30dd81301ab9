"""``druidflow_index_hadoop``: run one Druid ``index_hadoop`` task (Hadoop batch ingestion) as a Spark job, by hand.

    airflow dags trigger druidflow_index_hadoop --conf '{"spec": {"type": "index_hadoop", "spec": {...}}}'

``submit >> acquire_locks >> plan >> build_segments (one instance: the Spark job, driven from the worker) >>
publish >> release_locks``. The Spark master is ``spark.master`` from the task's ``jobProperties`` (or
``DRUIDFLOW_SPARK_MASTER``), else local mode in the worker. To hand the job to a cluster with spark-submit instead,
use :class:`druidflow.operators.spark.SparkIndexOperator` in your own DAG. Needs ``druidflow[spark]`` on the workers.
Parsing this file only builds the DAG.
"""

from druidflow.airflow.task_dags import druid_task_dag

dag = druid_task_dag(
    "druidflow_index_hadoop",
    "index_hadoop",
    "druidflow.airflow.hadoop_form:HADOOP_FORM",
    description="Druid index_hadoop task: validate, lock, one Spark job builds the segments, publish, release",
    doc_md=__doc__,
)
