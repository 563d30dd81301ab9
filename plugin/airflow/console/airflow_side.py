"""What the console reads from (and the one thing it asks of) Airflow's own database, in the API server process,
where Airflow's ORM may be used: the last auto-compaction plan (an XCom), the DAG run and task instance that ran a
Druid task (found by its XCom), and triggering a confirmed kill.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

log = logging.getLogger(__name__)

AUTO_COMPACTION_DAG_ID = "druidflow_auto_compaction"
#: A Druid task's Airflow run is searched among the runs due (``run_after``) this long before its creation (a run
#: may queue for a while) to a little after it (clock skew between workers and the API server).
RUN_SEARCH_BEFORE = timedelta(hours=6)
RUN_SEARCH_AFTER = timedelta(minutes=5)
#: At most this many runs, and this many of their XCom rows, are read to find one task's Airflow run.
RUN_SEARCH_RUNS = 200
RUN_SEARCH_ROWS = 5000
#: Keys an XCom value may name a Druid task id under (submit returns the task JSON, kill its report).
_ID_KEYS = ("id", "task_id", "taskId")


def _xcom_value(row: Any) -> Any:
    from airflow.models.xcom import XComModel

    try:
        return XComModel.deserialize_value(row)
    except Exception:
        return None


def last_compaction_plan() -> dict[str, Any]:
    """The newest ``plan`` XCom ``report`` of ``druidflow_auto_compaction``, with its run, the run's state and
    the run's final report when it has one; ``{"plan": None}`` before the first run."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            sa.select(XComModel.dag_run_id, XComModel.run_id, XComModel.value, XComModel.timestamp)
            .where(XComModel.dag_id == AUTO_COMPACTION_DAG_ID, XComModel.task_id == "plan", XComModel.key == "report")
            .order_by(XComModel.timestamp.desc())
            .limit(1)
        ).first()
        if row is None:
            return {"plan": None, "dagId": AUTO_COMPACTION_DAG_ID}
        state = session.execute(sa.select(DagRun.state).where(DagRun.id == row.dag_run_id)).scalar()
        outcome = session.execute(
            sa.select(XComModel.value)
            .where(XComModel.dag_run_id == row.dag_run_id, XComModel.task_id == "report", XComModel.key == "return_value")
        ).first()
    return {
        "dagId": AUTO_COMPACTION_DAG_ID,
        "runId": row.run_id,
        "runState": str(state.value if hasattr(state, "value") else state) if state else None,
        "plan": _xcom_value(row),
        "outcome": _xcom_value(outcome) if outcome else None,
    }


def compaction_state_by_datasource() -> dict[str, dict[str, int]]:
    """Per dataSource: how many chunks got each verdict in the last auto-compaction plan."""
    try:
        plan = last_compaction_plan().get("plan")
    except Exception as exc:
        log.warning("Druidflow console: cannot read the last auto-compaction plan: %s", exc)
        return {}
    out: dict[str, dict[str, int]] = {}
    for verdict in (plan or {}).get("verdicts", []):
        counts = out.setdefault(verdict.get("dataSource") or verdict.get("data_source"), {})
        counts[verdict["category"]] = counts.get(verdict["category"], 0) + 1
    return out


def _names_task(value: Any, task_id: str) -> bool:
    if isinstance(value, dict):
        if any(value.get(k) == task_id for k in _ID_KEYS):
            return True
        text = json.dumps(value, default=str)
        return len(text) < 1_000_000 and f'"{task_id}"' in text
    if isinstance(value, list):
        return any(isinstance(v, dict) and any(v.get(k) == task_id for k in _ID_KEYS) for v in value)
    return False


def airflow_run_of(task_id: str, created: str) -> Optional[dict[str, Any]]:
    """The DAG run and task instance whose XCom names the Druid task (its submit step's return value, a kill's
    report), or None (e.g. a task run from the command line). Searched in the return values of the runs that were
    due shortly before the task was created (``dag_run.run_after`` is indexed, XComs are keyed by run), newest
    first, so the cost does not grow with the XCom table."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    try:
        at = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    try:
        with create_session() as session:
            run_ids = session.execute(
                sa.select(DagRun.id)
                .where(DagRun.run_after >= at - RUN_SEARCH_BEFORE, DagRun.run_after <= at + RUN_SEARCH_AFTER)
                .order_by(DagRun.run_after.desc())
                .limit(RUN_SEARCH_RUNS)
            ).scalars().all()
            rows = session.execute(
                sa.select(XComModel.dag_run_id, XComModel.dag_id, XComModel.run_id, XComModel.task_id,
                          XComModel.map_index, XComModel.value)
                .where(XComModel.dag_run_id.in_(run_ids), XComModel.key == "return_value")
                .limit(RUN_SEARCH_ROWS)
            ).all() if run_ids else []
    except Exception as exc:
        log.warning("Druidflow console: cannot search XComs for %s: %s", task_id, exc)
        return None
    rank = {run_id: i for i, run_id in enumerate(run_ids)}
    for row in sorted(rows, key=lambda r: rank.get(r.dag_run_id, len(rank))):
        if _names_task(_xcom_value(row), task_id):
            return links(row.dag_id, row.run_id, row.task_id, row.map_index)
    return None


def links(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
    """Airflow UI paths of a DAG run and of one task instance (its page opens on the logs)."""
    from urllib.parse import quote

    run = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    ti = f"{run}/tasks/{quote(task_id, safe='')}" + (f"/mapped/{map_index}" if map_index is not None and map_index >= 0 else "")
    return {"dagId": dag_id, "runId": run_id, "taskId": task_id, "mapIndex": map_index, "runUrl": run,
            "taskUrl": ti, "logsUrl": ti}


def trigger_kill(dag_id: str, conf: dict[str, Any], user_name: str) -> dict[str, Any]:
    """Trigger a manual run of the kill DAG with ``conf`` as ``user_name`` (permission already checked)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType
    from fastapi import HTTPException

    try:
        with create_session() as session:
            run = trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.UI, conf=conf,
                              triggering_user_name=user_name, logical_date=None, session=session)
            paused = bool(session.query(DagModel.is_paused).filter(DagModel.dag_id == dag_id).scalar())
            run_id = run.run_id if run else None
    except DagNotFound:
        raise HTTPException(status_code=404, detail=f"DAG {dag_id!r} is not loaded in Airflow") from None
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"dagId": dag_id, "runId": run_id, "paused": paused, "conf": conf,
            "runUrl": links(dag_id, run_id, "kill")["runUrl"] if run_id else None,
            "at": datetime.now(timezone.utc).isoformat()}
