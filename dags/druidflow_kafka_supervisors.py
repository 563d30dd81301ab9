"""``druidflow_kafka_<id>``: one DAG per Kafka supervisor spec (see druidflow.airflow.kafka_dags).

Specs: the Airflow Variable ``druidflow_kafka_supervisors`` (JSON list or object of Druid Kafka supervisor specs)
and the ``*.json`` files of ``DRUIDFLOW_KAFKA_SPEC_DIR``. Each run is a supervisor cycle: ``plan`` (from the committed
offsets) ``>> kafka_task`` (mapped, one per task group and replica), every ``ioConfig.period``.
"""

from __future__ import annotations

from druidflow.airflow.kafka_dags import configured_specs, supervisor_dag

for _spec in configured_specs():
    _dag = supervisor_dag(_spec)
    globals()[_dag.dag_id] = _dag
