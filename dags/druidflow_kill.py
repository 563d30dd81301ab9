"""``druidflow_kill``: permanently delete unused segments, by hand only, a dry run unless confirmed.

Trigger it from the UI: fill in the dataSource and interval (or paste a whole Druid kill task), leave **Confirm**
off, and read the run's log or XCom: it lists exactly the segments and files a confirmed run would delete, and what
it would skip and why. Trigger again with **Confirm** ticked to delete them. From the command line::

    airflow dags trigger druidflow_kill --conf '{"data_source": "wiki", "interval": "2024-01-01/2024-02-01"}'
    airflow dags trigger druidflow_kill --conf '{"data_source": "wiki", "interval": "2024-01-01/2024-02-01", "confirm": true}'

Only unused segments lying entirely inside the interval are deleted (mark segments unused first, e.g. with
``druidflow mark-unused`` or retention rules); used segments and files a used segment still points at never are.
The DAG has no schedule and accepts manual runs only.

Connections: ``druidflow_metadata`` and ``druidflow_deep_storage``. Parsing this file touches no database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from druidflow.airflow.kill_form import kill_params
from druidflow.airflow.task_dags import manual_only
from druidflow.operators.kill import DruidKillOperator

with DAG(
    dag_id="druidflow_kill",
    description="Druid kill task: delete unused segments of an interval (dry run unless 'confirm' is ticked)",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params=kill_params(),
    render_template_as_native_obj=True,
    default_args={"owner": "druidflow", "retry_delay": timedelta(seconds=30)},
    tags=["druidflow", "druid", "kill"],
    doc_md=__doc__,
    **manual_only(),  # Airflow 3.2+: nothing but a person can start this DAG
) as dag:
    DruidKillOperator(task_id="kill")
