"""``druidflow_auto_compaction``: Druid's automatic compaction, on a schedule.

Every run plans all configured dataSources: it walks each one's time chunks newest first and gives every chunk a
verdict with a reason (compact; skipped: too recent / locked / too big / already compacted / no free slot), then runs
one ``compact`` task per chosen chunk, at most ``maxCompactionTaskSlots`` at once across runs, and ends with a report
of every chunk's outcome (compacted, failed, skipped) in its log and XCom. Chunks locked by other tasks -- including
compactions still running from an earlier run -- are skipped, never waited for, so one long compaction does not hold
up the others; a chunk that is preempted by ingestion or changes between planning and running is skipped and planned
again next run.

Configuration (see docs/compaction.md): the Airflow Variable ``druidflow_auto_compaction`` holds Druid's compaction
config JSON (``{"compactionConfigs": [{"dataSource": ..., "skipOffsetFromLatest": "P1D", ...}],
"maxCompactionTaskSlots": 4}``) or the path of a file with it. A run's conf may override it
(``{"config": {...}}``, ``{"config_file": "/path.json"}``), restrict it (``{"data_sources": ["wiki"]}``) or only plan
(``{"dry_run": true}``).

Environment knobs read when the file is parsed: ``DRUIDFLOW_AUTO_COMPACTION_SCHEDULE`` (cron or preset, default every
30 minutes, as Druid's coordinator), ``DRUIDFLOW_AUTO_COMPACTION_PARALLELISM`` (compactions one run executes at once,
default 4), ``DRUIDFLOW_AUTO_COMPACTION_TIMEOUT_MINUTES`` (per compaction, default 360), ``DRUIDFLOW_AUTO_COMPACTION_POOL``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, XComArg

from druidflow.operators.compact import AutoCompactionPlanOperator, AutoCompactionReportOperator, CompactOperator

SCHEDULE = os.environ.get("DRUIDFLOW_AUTO_COMPACTION_SCHEDULE", "*/30 * * * *")
PARALLELISM = int(os.environ.get("DRUIDFLOW_AUTO_COMPACTION_PARALLELISM", "4"))
TIMEOUT = timedelta(minutes=float(os.environ.get("DRUIDFLOW_AUTO_COMPACTION_TIMEOUT_MINUTES", "360")))
POOL = os.environ.get("DRUIDFLOW_AUTO_COMPACTION_POOL") or None

with DAG(
    dag_id="druidflow_auto_compaction",
    description="Druid automatic compaction: per-chunk verdicts, bounded concurrent compactions, a report per run",
    schedule=SCHEDULE,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    # Several runs may overlap: a run never waits for an earlier run's long compaction (the planner skips its chunk
    # as locked and counts its slot), so planning keeps going on schedule.
    max_active_runs=4,
    params={
        "config": Param(None, type=["null", "object", "array"], title="Settings (overrides the Variable)",
                        description_md="Druid's compaction config JSON; empty = the Variable `druidflow_auto_compaction`."),
        "config_file": Param(None, type=["null", "string"], title="Settings file"),
        "data_sources": Param([], type="array", items={"type": "string"}, title="Only these dataSources"),
        "dry_run": Param(False, type="boolean", title="Dry run (plan and report only)"),
    },
    render_template_as_native_obj=True,
    default_args={"owner": "druidflow"},
    tags=["druidflow", "druid", "compact", "auto-compaction"],
    doc_md=__doc__,
) as dag:
    plan = AutoCompactionPlanOperator(task_id="plan", pool=POOL) if POOL else AutoCompactionPlanOperator(task_id="plan")
    compact_kwargs = {"pool": POOL} if POOL else {}
    compact = CompactOperator.partial(
        task_id="compact",
        skip_when_preempted=True,
        max_active_tis_per_dagrun=PARALLELISM,
        execution_timeout=TIMEOUT,
        retries=0,
        **compact_kwargs,
    ).expand(spec=plan.output)
    report = AutoCompactionReportOperator(task_id="report", plan_report=XComArg(plan, key="report"))
    plan >> compact >> report
