"""``druidflow_kafka_<id>``: one DAG per Kafka supervisor spec (see druidflow.airflow.kafka_dags).

Specs: the Airflow Variable ``druidflow_kafka_supervisors`` (JSON list or object of Druid Kafka supervisor specs)
and the ``*.json`` files of ``DRUIDFLOW_KAFKA_SPEC_DIR``. Each run is a supervisor cycle: ``plan`` (from the committed
offsets) ``>> kafka_task`` (mapped, one per task group and replica), every ``ioConfig.period`` (or continuously
with ``DRUIDFLOW_KAFKA_CONTINUOUS=1``).
"""

from __future__ import annotations

import os

from druidflow.airflow.kafka_dags import CONTINUOUS_ENV, configured_specs, supervisor_dag

_CONTINUOUS = os.environ.get(CONTINUOUS_ENV, "").lower() in ("1", "true", "yes")

for _spec in configured_specs():
    _dag = supervisor_dag(_spec, continuous=_CONTINUOUS)
    globals()[_dag.dag_id] = _dag
