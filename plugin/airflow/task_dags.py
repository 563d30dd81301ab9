"""The manual DAG of a task type: its trigger form and its task group, so that a DAG file is one call.

.. code-block:: python

    from druidflow.airflow.task_dags import druid_task_dag

    dag = druid_task_dag("druidflow_merge", "merge", "druidflow.airflow.merge_form:MERGE_FORM", doc_md=__doc__)

Parsing such a file builds the DAG only: no database, storage or engine module is touched.
"""

from __future__ import annotations

import importlib
import inspect
from datetime import datetime, timedelta
from typing import Any, Optional


def druid_task_dag(
    dag_id: str,
    task_type: str,
    trigger_form: str,
    *,
    group_id: Optional[str] = None,
    description: Optional[str] = None,
    doc_md: Optional[str] = None,
    tags: tuple[str, ...] = (),
    **group_kwargs: Any,
):
    """A manual-only DAG running one Druid task of ``task_type`` per run, from its trigger form (``trigger_form`` is
    the ``"module:NAME"`` of a :class:`~druidflow.airflow.trigger_form.TriggerForm`) or a whole task JSON."""
    from airflow.sdk import DAG

    from druidflow.airflow.task_groups import druid_task_group

    module, name = trigger_form.split(":")
    form = getattr(importlib.import_module(module), name)
    manual = {"allowed_run_types": ["manual"]} if "allowed_run_types" in inspect.signature(DAG).parameters else {}
    with DAG(
        dag_id=dag_id,
        description=description or f"Druid {task_type} task: validate, lock, plan, build (mapped), publish, release",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        params=form.params(),
        render_template_as_native_obj=True,
        max_active_tasks=32,
        default_args={"owner": "druidflow", "retry_delay": timedelta(seconds=10)},
        tags=["druidflow", "druid", task_type, *tags],
        doc_md=doc_md,
        **manual,
    ) as dag:
        druid_task_group(task_type, None, group_id=group_id or task_type, trigger_form=trigger_form, **group_kwargs)
    return dag
