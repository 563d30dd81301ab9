"""Druid's supervisor HTTP API, ``/druid/indexer/v1/supervisor``, as a FastAPI router over the engine's supervisor
functions (:mod:`druidflow.streaming.supervisor`).

It is included in the app mounted at ``/druid`` (:mod:`druidflow.airflow.druid_api.app`; the router's paths start
at ``/indexer/v1/supervisor``), behind its authentication; it takes the engine on Druidflow's tables from
:func:`druidflow.airflow.druid_api.deps.get_engine`, which tests override. A spec
POSTed here is stored in ``druidflow_supervisors``; ``dags/druidflow_kafka_supervisors.py`` makes a DAG of every
stored supervisor, as of every spec in its Variable and folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException
from sqlalchemy.engine import Engine

from druidflow.airflow.druid_api.deps import get_engine
from druidflow.exceptions import DruidflowError, SpecError

router = APIRouter(prefix="/indexer/v1/supervisor", tags=["supervisor"])


def _runtime(engine: Engine = Depends(get_engine)):
    from druidflow.airflow.no_storage import NoDeepStorage
    from druidflow.locks import TaskLockbox
    from druidflow.metadata.store import MetadataStore
    from druidflow.tasks.runtime import Runtime

    # Supervisor state and offsets live in the metadata DB; deep storage is never touched by these routes.
    work_dir = Path(tempfile.gettempdir()) / "druidflow-work"
    return Runtime(store=MetadataStore(engine), lockbox=TaskLockbox(engine), storage=NoDeepStorage("the supervisor API"), work_dir=work_dir)


def _errors(fn, *args: Any) -> Any:
    try:
        return fn(*args)
    except SpecError as exc:
        status = 404 if exc.path == "supervisor" else 400
        raise HTTPException(status_code=status, detail={"error": str(exc)}) from None
    except DruidflowError as exc:
        raise HTTPException(status_code=503, detail={"error": str(exc)}) from None


@router.post("")
def post_supervisor(spec: dict[str, Any] = Body(...), rt=Depends(_runtime)) -> dict[str, str]:
    """Create or update a supervisor (Druid: ``POST /druid/indexer/v1/supervisor``); answers ``{"id": ...}``."""
    from druidflow.streaming import supervisor

    sup = _errors(supervisor.parse_supervisor_spec, spec)
    supervisor.save(rt, sup)
    return {"id": sup.id}


@router.get("")
def list_supervisors(rt=Depends(_runtime)) -> list[str]:
    from druidflow.streaming import supervisor

    return supervisor.list_ids(rt)


@router.get("/{supervisor_id}")
def get_supervisor(supervisor_id: str, rt=Depends(_runtime)) -> dict[str, Any]:
    from druidflow.streaming import supervisor

    sup, suspended = _errors(supervisor.load, rt, supervisor_id)
    return {**sup.model_dump(), "suspended": suspended}


@router.get("/{supervisor_id}/status")
def supervisor_status(supervisor_id: str, rt=Depends(_runtime)) -> dict[str, Any]:
    from druidflow.intervals import format_instant, now_ms
    from druidflow.streaming import supervisor

    payload = _errors(supervisor.status, rt, supervisor_id)
    return {"id": supervisor_id, "generationTime": format_instant(now_ms()), "payload": payload}


@router.post("/{supervisor_id}/suspend")
def suspend(supervisor_id: str, rt=Depends(_runtime)) -> dict[str, Any]:
    from druidflow.streaming import supervisor

    _errors(supervisor.set_suspended, rt, supervisor_id, True)
    return get_supervisor(supervisor_id, rt)


@router.post("/{supervisor_id}/resume")
def resume(supervisor_id: str, rt=Depends(_runtime)) -> dict[str, Any]:
    from druidflow.streaming import supervisor

    _errors(supervisor.set_suspended, rt, supervisor_id, False)
    return get_supervisor(supervisor_id, rt)


@router.post("/{supervisor_id}/reset")
def reset(supervisor_id: str, rt=Depends(_runtime)) -> dict[str, str]:
    """Forget the committed offsets (Druid's reset): the next tasks start at ``useEarliestOffset``."""
    from druidflow.streaming import supervisor

    _errors(supervisor.reset, rt, supervisor_id, None)
    return {"id": supervisor_id}


@router.post("/{supervisor_id}/terminate")
def terminate(supervisor_id: str, rt=Depends(_runtime)) -> dict[str, str]:
    """Stop and forget the supervisor (its committed offsets stay, as in Druid)."""
    from druidflow.streaming import supervisor

    _errors(supervisor.terminate, rt, supervisor_id)
    return {"id": supervisor_id}
