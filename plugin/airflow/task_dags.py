"""The manual DAG of a task type: its trigger form and its task group, so that a DAG file is one call.

.. code-block:: python

    from druidflow.airflow.task_dags import druid_task_dag

    dag = druid_task_dag("druidflow_merge", "merge", "druidflow.airflow.merge_form:MERGE_FORM", doc_md=__doc__)

Parsing such a file builds the DAG only: no database, storage or engine module is touched.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Optional, TypedDict

if TYPE_CHECKING:
    from airflow.sdk import DAG
    from airflow.sdk.api.datamodels._generated import DagRunType


class ManualOnly(TypedDict, total=False):
    """The DAG arguments that keep a DAG to manual runs, where this Airflow can."""

    allowed_run_types: Collection[DagRunType]


def manual_only() -> ManualOnly:
    """``allowed_run_types=[MANUAL]`` from Airflow 3.2 on (there, nothing but a person can start the DAG); nothing
    before, where ``DAG`` has no such argument. Spread it into the call: ``DAG(..., **manual_only())``."""
    from airflow.sdk import DAG

    if "allowed_run_types" not in inspect.signature(DAG).parameters:
        return {}
    # The enum DAG's signature names (the task SDK's API model); DAG converts plain strings to it as well.
    from airflow.sdk.api.datamodels._generated import DagRunType

    return {"allowed_run_types": [DagRunType.MANUAL]}


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
) -> DAG:
    """A manual-only DAG running one Druid task of ``task_type`` per run, from its trigger form (``trigger_form`` is
    the ``"module:NAME"`` of a :class:`~druidflow.airflow.trigger_form.TriggerForm`) or a whole task JSON."""
    from airflow.sdk import DAG

    from druidflow.airflow.task_groups import druid_task_group

    module, name = trigger_form.split(":")
    form = getattr(importlib.import_module(module), name)
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
        **manual_only(),
    ) as dag:
        druid_task_group(task_type, None, group_id=group_id or task_type, trigger_form=trigger_form, **group_kwargs)
    return dag
