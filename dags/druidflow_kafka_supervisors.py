"""``druidflow_kafka_<id>``: one DAG per Kafka supervisor spec (see druidflow.airflow.kafka_dags).

Specs: the Airflow Variable ``druidflow_kafka_supervisors`` (JSON list or object of Druid Kafka supervisor specs),
the supervisors stored by ``POST /druid/indexer/v1/supervisor`` or ``druidflow supervise``, and the ``*.json``
files of ``DRUIDFLOW_KAFKA_SPEC_DIR``. Each run is a supervisor cycle: ``plan`` (from the committed
offsets) ``>> kafka_task`` (mapped, one per task group and replica), every ``ioConfig.period`` (or continuously
with ``DRUIDFLOW_KAFKA_CONTINUOUS=1``).
"""

from __future__ import annotations

import os

from druidflow.airflow.kafka_dags import CONTINUOUS_ENV, configured_specs, supervisor_dag

_CONTINUOUS = os.environ.get(CONTINUOUS_ENV, "").lower() in ("1", "true", "yes")
_seen: set[str] = set()

for _spec in configured_specs():
    from druidflow.streaming.kafka_spec import parse_supervisor_spec  # only when there is a spec to validate

    _id = parse_supervisor_spec(_spec).id  # a bad spec fails this file with its field path
    if _id in _seen:
        continue  # one DAG per supervisor: the Variable first, then the supervisors table, then the folder
    _seen.add(_id)
    _dag = supervisor_dag(_spec, continuous=_CONTINUOUS)
    globals()[_dag.dag_id] = _dag
