"""One Airflow DAG per Kafka supervisor spec: ``plan >> kafka_task`` (mapped: one instance per task of the cycle).

A run is one supervisor cycle. The schedule is the spec's ``ioConfig.period`` (Druid's supervisor run period),
one run at a time, no catch-up: each run plans from the offsets the previous one committed. Suspending the
supervisor (``druidflow supervisor suspend ID``) makes the runs skip.

``DRUIDFLOW_KAFKA_CONTINUOUS=1`` makes the DAG file schedule them continuously instead.
Specs come from the Airflow Variable ``druidflow_kafka_supervisors`` (a JSON list of supervisor specs, or an object
of them), from the supervisors stored in ``druidflow_supervisors`` (``POST /druid/indexer/v1/supervisor``,
``druidflow supervise``) and from the ``*.json`` files of the folder ``DRUIDFLOW_KAFKA_SPEC_DIR``.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

VARIABLE = "druidflow_kafka_supervisors"
SPEC_DIR_ENV = "DRUIDFLOW_KAFKA_SPEC_DIR"
CONTINUOUS_ENV = "DRUIDFLOW_KAFKA_CONTINUOUS"


def supervisor_dag(spec: Any, *, dag_id: str | None = None, continuous: bool = False, **dag_kwargs: Any):
    """The DAG of one supervisor spec (validated here, so a bad spec fails the DAG file with its field path).

    ``continuous`` schedules a new run as soon as the last one ended (Airflow's ``@continuous``) instead of every
    ``ioConfig.period``."""
    from airflow.sdk import DAG

    from druidflow.operators.kafka import KafkaSupervisorPlanOperator, KafkaTaskOperator
    from druidflow.streaming.kafka_spec import parse_supervisor_spec

    sup = parse_supervisor_spec(spec)
    period = timedelta(milliseconds=max(sup.io.ms("period"), 1000))
    kwargs = {
        "schedule": "@continuous" if continuous else period,
        "start_date": datetime(2024, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["druidflow", "druid", "kafka", "supervisor"],
        "default_args": {"owner": "druidflow"},
        "description": f"Kafka supervisor of {sup.data_source} (topic {sup.io.topic})",
        "render_template_as_native_obj": True,
        **dag_kwargs,
    }
    timeout = timedelta(milliseconds=sup.io.ms("task_duration") + sup.io.ms("completion_timeout"))
    with DAG(dag_id or f"druidflow_kafka_{sup.id}", **kwargs) as dag:
        plan = KafkaSupervisorPlanOperator(task_id="plan", spec=sup.model_dump())
        KafkaTaskOperator.partial(
            task_id="kafka_task", execution_timeout=timeout, retries=2, retry_delay=timedelta(seconds=5)
        ).expand(kafka_task=plan.output)
    return dag


def _stored_specs() -> list[Any]:
    """Supervisors submitted through the API or ``druidflow supervise`` (``druidflow_supervisors``), read through the
    metadata Connection with one plain query (parsing a DAG file must not load the engine)."""
    try:
        import sqlalchemy as sa

        from druidflow.airflow.hooks import DruidflowMetadataHook
        from druidflow.metadata.tables import supervisors

        engine = sa.create_engine(DruidflowMetadataHook().sqlalchemy_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.select(supervisors.c.payload).order_by(supervisors.c.id)).all()
        finally:
            engine.dispose()
        return [json.loads(r.payload) for r in rows]
    except Exception as exc:
        log.debug("stored Kafka supervisors not read: %s", exc)
        return []


def configured_specs() -> list[Any]:
    """The specs of the Variable, of the supervisors table and of the spec folder (one DAG per supervisor id;
    unreadable ones are logged and left out)."""
    specs: list[Any] = []
    try:
        from airflow.sdk import Variable

        raw = Variable.get(VARIABLE, default=None)
    except Exception:
        raw = None
    if raw:
        value = json.loads(raw) if isinstance(raw, str) else raw
        specs.extend(value.values() if isinstance(value, dict) and "type" not in value else (value if isinstance(value, list) else [value]))
    specs.extend(_stored_specs())
    folder = os.environ.get(SPEC_DIR_ENV)
    if folder:
        for path in sorted(Path(folder).glob("*.json")):
            try:
                specs.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                log.error("Kafka supervisor spec %s is unreadable: %s", path, exc)
    return specs
