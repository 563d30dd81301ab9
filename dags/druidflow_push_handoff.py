"""``druidflow_push_handoff``: the realtime tasks of stream push, run by Airflow.

Every run hands off the closed windows of every pushed dataSource (the realtime specs in the Variable
``druidflow_push_specs`` and the folder ``DRUIDFLOW_PUSH_SPECS``): each window's spooled events are indexed and
published exactly once, under an APPEND lock at priority 75 (docs/stream-push.md). A run's conf may restrict it
(``{"data_sources": ["clicks"]}``) or hand off open windows too (``{"drain": true}``). One run at a time; the
schedule (``DRUIDFLOW_PUSH_HANDOFF_SCHEDULE``, default every minute) bounds how late after ``windowPeriod`` +
``handoffDelay`` a window is published. ``druidflow realtime SPEC`` is the same process in the foreground.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from druidflow.operators.push import PushHandoffOperator

# "none": only triggered runs (for setups where a `druidflow realtime` process does the handoffs).
_schedule = os.environ.get("DRUIDFLOW_PUSH_HANDOFF_SCHEDULE", "* * * * *")
SCHEDULE = None if _schedule.strip().lower() == "none" else _schedule

with DAG(
    dag_id="druidflow_push_handoff",
    description="Stream push: publish each closed window's pushed events exactly once",
    schedule=SCHEDULE,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "data_sources": Param([], type="array", items={"type": "string"}, title="Only these dataSources"),
        "drain": Param(False, type="boolean", title="Also hand off open windows"),
    },
    render_template_as_native_obj=True,
    default_args={"owner": "druidflow", "retries": 2},
    tags=["druidflow", "druid", "push", "realtime"],
    doc_md=__doc__,
) as dag:
    PushHandoffOperator(task_id="handoff", data_sources="{{ params.data_sources }}", drain="{{ params.drain }}")
