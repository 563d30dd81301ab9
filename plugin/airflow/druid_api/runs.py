"""The Airflow side of the Druid API: the DAG runs carrying Druid tasks, through Airflow's ORM.

Only the API server calls this (task code may not use Airflow's ORM; the API server may). A task submitted here
runs as a manual run of its DAG with ``run_id`` derived from the task id, so finding the run of a task needs no
table of our own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Optional

from druidflow.airflow.druid_api.errors import DruidApiError
from druidflow.airflow.druid_api.task_dags import dag_ids, run_id_for
from druidflow.airflow.druid_api.task_status import RunInfo

ACTIVE_RUN_STATES = ("queued", "running")


def _iso(value: Optional[datetime]) -> Optional[str]:
    if value is None:
        return None
    from druidflow.intervals import format_instant

    return format_instant(int(value.timestamp() * 1000))


def _ms(value: Optional[datetime]) -> Optional[int]:
    return None if value is None else int(value.timestamp() * 1000)


def _info(run: Any) -> RunInfo:
    conf = run.conf or {}
    task = spec if isinstance(spec := conf.get("spec"), dict) else {}
    state = getattr(run.state, "value", run.state)
    return RunInfo(
        dag_id=run.dag_id,
        run_id=run.run_id,
        state=str(state),
        task=task,
        queued_at=_iso(run.queued_at or run.run_after),
        start_ms=_ms(run.queued_at or run.start_date),
        end_ms=_ms(run.end_date),
    )


def find_run(task_id: str, dag_id: Optional[str] = None) -> Optional[RunInfo]:
    """The run carrying Druid task ``task_id`` (on ``dag_id``, else on any DAG of the task table), or None."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    candidates = [dag_id] if dag_id else dag_ids()
    with create_session() as session:
        runs = session.scalars(
            sa.select(DagRun).where(DagRun.run_id == run_id_for(task_id), DagRun.dag_id.in_(candidates))
        ).all()
        found = [_info(r) for r in runs]
    found = [r for r in found if r.task_id == task_id]
    return found[0] if found else None


def active_runs() -> list[RunInfo]:
    """Queued and running runs of the task table's DAGs (tasks not recorded yet are among them)."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.scalars(
            sa.select(DagRun).where(DagRun.dag_id.in_(dag_ids()), DagRun.state.in_(ACTIVE_RUN_STATES))
        ).all()
        return [_info(r) for r in runs]


def trigger(dag_id: str, task: dict[str, Any], conf: dict[str, Any], user_name: str) -> RunInfo:
    """Start a run of ``dag_id`` for ``task``; refuses a paused or missing DAG (the task would never run)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    task_id = str(task["id"])
    with create_session() as session:
        model = DagModel.get_current(dag_id, session=session)
        if model is None:
            raise DruidApiError(
                503, f"the DAG {dag_id} that runs {task.get('type')} tasks is not deployed", field="type",
                value=task.get("type"),
            )
        if model.is_paused:
            raise DruidApiError(
                503, f"the DAG {dag_id} that runs {task.get('type')} tasks is paused; unpause it to run tasks",
                field="type", value=task.get("type"),
            )
    try:
        run = trigger_dag(
            dag_id,
            run_id=run_id_for(task_id),
            conf=conf,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=user_name,
        )
    except DagRunAlreadyExists:
        raise DruidApiError(400, f"Task [{task_id}] already exists", field="id", value=task_id) from None
    except DagNotFound as exc:
        raise DruidApiError(503, str(exc), field="type", value=task.get("type")) from None
    except ValueError as exc:  # the DAG's params refused the conf
        raise DruidApiError(400, str(exc), field="spec") from None
    return _info(run)


def fail_run(run: RunInfo) -> None:
    """Mark the run failed: its running steps are killed (their ``on_kill`` releases locks) and the rest skipped.

    Airflow leaves a run with a pending teardown running, and then judges it by its last non-teardown step, which
    is skipped here: the run would end "success". A shut-down task's run ends failed, so its state is set here;
    the caller releases the task's locks itself (the teardown's job)."""
    import sqlalchemy as sa
    from airflow.api.common.mark_tasks import set_dag_run_state_to_failed
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(run.dag_id, session=session)
        if dag is None:
            raise DruidApiError(503, f"the DAG {run.dag_id} is not deployed")
        set_dag_run_state_to_failed(dag=dag, run_id=run.run_id, commit=True, session=session)
        dag_run = session.scalars(
            sa.select(DagRun).where(DagRun.dag_id == run.dag_id, DagRun.run_id == run.run_id)
        ).one()
        if dag_run.state != DagRunState.FAILED:
            dag_run.set_state(DagRunState.FAILED)


def publish_outputs(run: RunInfo) -> Iterable[Any]:
    """The ``return_value`` XComs of the run's steps (publish's holds the segments it published)."""
    import sqlalchemy as sa
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(
            sa.select(XComModel.value).where(
                XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"
            )
        ).all()
    for row in rows:
        try:
            yield XComModel.deserialize_value(row)
        except Exception:
            continue
