"""Druid's Overlord task API at ``/druid/indexer/v1``: submit, status, payload, reports, segments, shutdown,
the task list and the locked intervals. A submitted task runs as a run of its DAG (:mod:`.task_dags`)."""

from __future__ import annotations

import json
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from druidflow.airflow.druid_api import runs
from druidflow.airflow.druid_api.auth import authorize, druid_user
from druidflow.airflow.druid_api.deps import get_engine
from druidflow.airflow.druid_api.errors import DruidApiError
from druidflow.airflow.druid_api.task_dags import TASK_DAGS, task_dag
from druidflow.airflow.druid_api.task_status import data_source_of, druid_state, status_plus

router = APIRouter(prefix="/indexer/v1", tags=["Overlord"])

SHUTDOWN_MESSAGE = "Shutdown request from user"
TASK_STATES = ("running", "complete", "waiting", "pending")


def _store(engine: Engine):
    from druidflow.metadata.store import MetadataStore

    return MetadataStore(engine)


def _holds_lock(engine: Engine, task_id: str) -> bool:
    from druidflow.locks import TaskLockbox

    return any(lock.active for lock in TaskLockbox(engine).locks(task_id=task_id))


def _lookup(engine: Engine, task_id: str):
    """``(task row or None, run or None)``; 404 in Druid's shape when neither exists."""
    record = _store(engine).get_task(task_id)
    route = task_dag(record.type) if record else None
    run = runs.find_run(task_id, route.dag_id if route else None) if (route or record is None) else None
    if record is None and run is None:
        raise DruidApiError(404, f"Cannot find any task with id: [{task_id}]", field="taskId", value=task_id)
    return record, run


def _read_task_json(body: bytes) -> dict[str, Any]:
    try:
        task = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DruidApiError(400, f"the request body is not JSON: {exc}", field="body") from None
    if not isinstance(task, dict):
        raise DruidApiError(400, "the request body must be a task JSON object", field="body", value=task)
    task_type = task.get("type")
    if not isinstance(task_type, str) or task_dag(task_type) is None:
        raise DruidApiError(
            400,
            f"type: task type {task_type!r} is not run by Druidflow; supported: {', '.join(sorted(TASK_DAGS))}",
            field="type",
            value=task_type,
        )
    return task


#: A task JSON larger than this is refused before it is read (Druid specs are kilobytes; inline data belongs in files).
MAX_TASK_BYTES = 16 * 1024 * 1024


async def _task_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_TASK_BYTES:
        raise DruidApiError(413, f"the task JSON is larger than {MAX_TASK_BYTES} bytes", field="body", value=int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_TASK_BYTES:
            raise DruidApiError(413, f"the task JSON is larger than {MAX_TASK_BYTES} bytes", field="body")
    return bytes(body)


@router.post("/task")
async def submit_task(request: Request, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)) -> dict:
    """Submit a Druid task: validated in full, then run as a run of its DAG. Answers ``{"task": id}``."""
    task = _read_task_json(await _task_body(request))
    route = TASK_DAGS[task["type"]]
    authorize(user, "POST", route.dag_id, f"submit {task['type']} tasks")
    return await run_in_threadpool(_submit, task, route, user.get_name(), engine)


def _submit(task: dict[str, Any], route, user_name: str, engine: Engine) -> dict[str, str]:
    from druidflow.specs.tasks import parse_task

    parsed = parse_task(task)  # a SpecError names the field; nothing is started
    task_id = parsed.task_id
    if _store(engine).get_task(task_id) is not None or runs.find_run(task_id) is not None:
        raise DruidApiError(400, f"Task [{task_id}] already exists", field="id", value=task_id)
    submitted = {**task, "id": task_id}
    runs.trigger(route.dag_id, submitted, route.conf(submitted), user_name)
    return {"task": task_id}


@router.get("/task/{task_id}")
def get_task(task_id: str, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)) -> dict:
    """The task's JSON as submitted (with its id): ``{"task": id, "payload": {...}}``."""
    authorize(user, "GET", None, "read tasks")
    record, run = _lookup(engine, task_id)
    payload = run.task if run is not None and run.task else record.payload
    return {"task": task_id, "payload": payload}


@router.get("/task/{task_id}/status")
def get_task_status(task_id: str, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)) -> dict:
    """Druid's TaskStatusResponse: ``{"task": id, "status": {status, statusCode, runnerStatusCode, ...}}``."""
    authorize(user, "GET", None, "read tasks")
    record, run = _lookup(engine, task_id)
    return {"task": task_id, "status": status_plus(record, run, record is not None and _holds_lock(engine, task_id))}


@router.get("/task/{task_id}/reports")
def get_task_reports(task_id: str, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)) -> Any:
    """The task report (``ingestionStatsAndErrors``); 404 while the task has none yet."""
    authorize(user, "GET", None, "read tasks")
    record, _ = _lookup(engine, task_id)
    if record is None or not record.report:
        raise DruidApiError(404, f"No task reports were found for this task [{task_id}]", field="taskId", value=task_id)
    return record.report


@router.get("/task/{task_id}/segments")
def get_task_segments(task_id: str, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)) -> list:
    """The segments the task published (from its publish step's output), as Druid's segment payloads."""
    authorize(user, "GET", None, "read tasks")
    record, run = _lookup(engine, task_id)
    if run is None:
        return []
    from druidflow.segments.descriptor import DataSegment

    published: dict[str, dict[str, Any]] = {}
    for output in runs.publish_outputs(run):
        if isinstance(output, dict) and output.get("taskId") == task_id and isinstance(output.get("segments"), list):
            for item in output["segments"]:
                payload = DataSegment.model_validate(item).payload()  # Druid's payload, with its identifier
                published[payload["identifier"]] = payload
    return list(published.values())


@router.post("/task/{task_id}/shutdown")
def shutdown_task(task_id: str, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)) -> dict:
    """Stop the task: its run is marked failed (running steps killed, later ones skipped), its locks released,
    and it is recorded FAILED. Publishing needs valid locks inside one transaction, so nothing half-published."""
    record, run = _lookup(engine, task_id)
    route = task_dag(record.type if record else run.task.get("type", ""))
    authorize(user, "PUT", route.dag_id if route else None, "shut tasks down")
    _shutdown(engine, task_id, record, run)
    return {"task": task_id}


def _shutdown(engine: Engine, task_id: str, record, run) -> None:
    if record is not None and record.status != "RUNNING":
        return  # already complete: as Druid, nothing to do
    if run is not None and run.state in runs.ACTIVE_RUN_STATES:
        runs.fail_run(run)
    from druidflow.locks import TaskLockbox

    TaskLockbox(engine).release_all(task_id)
    store = _store(engine)
    if record is None and run is not None:
        # Stopped before its first step recorded it: record it now, so that its status says why it ended.
        task = run.task
        store.insert_task(task_id, str(task.get("type")), data_source_of(task) or "", task_id, task)
    current = store.get_task(task_id)
    if current is not None and current.status == "RUNNING":
        store.set_task_status(task_id, "FAILED", error_msg=SHUTDOWN_MESSAGE)


@router.post("/datasources/{data_source}/shutdownAllTasks")
def shutdown_all_tasks(data_source: str, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)) -> dict:
    """Shut down every active task of the dataSource: ``{"dataSource": ds}``."""
    authorize(user, "PUT", None, "shut tasks down")
    active = {r.id: r for r in _store(engine).list_tasks(data_source, True, None)}
    pending = {run.task_id: run for run in runs.active_runs() if data_source_of(run.task) == data_source}
    for task_id in sorted(set(active) | set(pending)):
        record, run = active.get(task_id), pending.get(task_id)
        # Every id is active, pending or both: a record, else a run.
        task_type = record.type if record else run.task.get("type", "") if run else ""
        route = task_dag(task_type)
        authorize(user, "PUT", route.dag_id if route else None, "shut tasks down")
        _shutdown(engine, task_id, record, run or runs.find_run(task_id, route.dag_id if route else None))
    return {"dataSource": data_source}


@router.get("/tasks")
def list_tasks(
    state: Optional[str] = Query(None, description="running, complete, waiting or pending"),
    datasource: Optional[str] = Query(None),
    max: Optional[int] = Query(None, ge=0, description="at most this many complete tasks"),
    type: Optional[str] = Query(None, description="only tasks of this type"),
    created_time_interval: Optional[str] = Query(None, alias="createdTimeInterval"),
    user: Any = Depends(druid_user),
    engine: Engine = Depends(get_engine),
) -> list:
    """Tasks as Druid's TaskStatusPlus, newest first: active ones first, then at most ``max`` complete ones."""
    authorize(user, "GET", None, "read tasks")
    if state is not None and state.lower() not in TASK_STATES:
        raise DruidApiError(400, f"state: one of {', '.join(TASK_STATES)}", field="state", value=state)
    created = _created_interval(created_time_interval)
    store = _store(engine)
    want_active = None if state is None else state.lower() != "complete"
    records = store.list_tasks(datasource, want_active, None)
    by_run = {run.task_id: run for run in runs.active_runs()}
    from druidflow.locks import TaskLockbox

    locked = {lock.task_id for lock in TaskLockbox(engine).locks(datasource=datasource) if lock.active}
    statuses = [status_plus(r, by_run.get(r.id), r.id in locked) for r in records]
    recorded = {r.id for r in records}
    statuses += [
        status_plus(None, run, False)
        for task_id, run in by_run.items()
        if task_id and task_id not in recorded and (datasource is None or status_plus(None, run, False)["dataSource"] == datasource)
    ]
    if state is not None:
        statuses = [s for s in statuses if druid_state(s) == state.lower()]
    if type is not None:
        statuses = [s for s in statuses if s["type"] == type]
    if created is not None:
        statuses = [s for s in statuses if s["createdTime"] and created(s["createdTime"])]
    statuses.sort(key=lambda s: s["createdTime"] or "", reverse=True)
    active = [s for s in statuses if s["status"] == "RUNNING"]
    complete = [s for s in statuses if s["status"] != "RUNNING"]
    return active + (complete[:max] if max is not None else complete)


def _state_list(state: str):
    def route(
        datasource: Optional[str] = Query(None),
        user: Any = Depends(druid_user),
        engine: Engine = Depends(get_engine),
    ) -> list:
        return list_tasks(state, datasource, None, None, None, user, engine)

    route.__doc__ = f"Druid's older ``/{state}Tasks`` list: ``/tasks?state={state}``."
    return route


# Druid's older per-state lists, still used by scripts and older consoles.
for _state in TASK_STATES:
    router.add_api_route(f"/{_state}Tasks", _state_list(_state), methods=["GET"], name=f"{_state}_tasks")


def _created_interval(text: Optional[str]):
    """``createdTimeInterval`` (``start_end``, as Druid writes intervals in query strings) as a test on an
    instant, or None."""
    if not text:
        return None
    from druidflow.intervals import Interval, parse_instant

    window = Interval.parse(text.replace("_", "/"), "createdTimeInterval")
    return lambda iso: window.start <= parse_instant(iso) < window.end


@router.post("/lockedIntervals")
async def locked_intervals(request: Request, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)) -> JSONResponse:
    """``{dataSource: minPriority}`` -> ``{dataSource: [locked intervals]}`` held at that priority or higher."""
    authorize(user, "GET", None, "read locks")
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        raise DruidApiError(400, f"the request body is not JSON: {exc}", field="body") from None
    if not isinstance(body, dict):
        raise DruidApiError(400, "the body maps each dataSource to a minimum priority", field="body", value=body)
    for ds, priority in body.items():
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise DruidApiError(400, f"{ds}: the minimum priority must be an integer", field=ds, value=priority)
    from druidflow.locks import TaskLockbox

    box = TaskLockbox(engine)
    out: dict[str, list[str]] = {}
    for ds, min_priority in body.items():
        intervals = sorted(
            {(lk.interval.start, lk.interval.end, str(lk.interval)) for lk in box.locks(datasource=ds) if lk.active and lk.priority >= min_priority}
        )
        if intervals:
            out[ds] = [text for _, _, text in intervals]
    return JSONResponse(out)
