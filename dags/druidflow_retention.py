"""``druidflow_retention``: every day, apply each dataSource's retention rules, then (where enabled) kill.

1. ``apply_rules`` evaluates each dataSource's rules (``druidflow rules <ds> --set ...``, first match wins, the
   ``_default`` rules last) on every used segment and marks those a drop rule matches unused. No file is touched.
2. ``kill_unused`` deletes unused segments marked unused longer than the buffer period ago (default 30 days), but
   only for the dataSources the configuration enables; by default it deletes nothing. Intervals other tasks hold
   are skipped and reported.

Configuration: the Airflow Variable ``druidflow_retention`` (JSON), or a JSON file named by
``$DRUIDFLOW_RETENTION_CONFIG``; see ``docs/retention.md``. Trigger by hand with ``{"dry_run": true}`` to see
what a run would do.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from druidflow.operators.kill import ApplyRetentionRulesOperator, ScheduledKillOperator

with DAG(
    dag_id="druidflow_retention",
    description="Apply retention rules (mark unused), then kill unused segments past the buffer period where enabled",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Only report what the rules would mark unused and what the kill would delete."),
    },
    render_template_as_native_obj=True,
    default_args={"owner": "druidflow", "retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["druidflow", "druid", "retention", "kill"],
    doc_md=__doc__,
) as dag:
    apply_rules = ApplyRetentionRulesOperator(task_id="apply_rules", dry_run="{{ params.dry_run }}")
    kill_unused = ScheduledKillOperator(task_id="kill_unused", dry_run="{{ params.dry_run }}")
    apply_rules >> kill_unused
