"""The Druidflow console: a FastAPI app on the Airflow API server, at ``/druidflow-console``.

``GET /`` is one HTML page (plain HTML, CSS and JavaScript from ``static/``, no build step) with six views --
DataSources, Timeline, Tasks, Locks, Auto-compaction, Kill -- drawn from the JSON routes under ``/api``. Every
route needs an authenticated Airflow user, exactly as the rest of the API server (a ``Bearer`` token or the UI's
``_token`` cookie, which the page inside Airflow's UI sends); confirming a kill also needs Airflow's permission
to trigger runs of ``druidflow_kill``, checked by Airflow's own auth manager, and triggers that DAG with
``confirm`` ticked. Nothing here writes to Druidflow's tables.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse
from sqlalchemy.engine import Engine

from druidflow.airflow.console import queries as q

URL_PREFIX = "/druidflow-console"
KILL_DAG_ID = "druidflow_kill"
STATIC = Path(__file__).with_name("static")
_ASSETS = {"console.js": "text/javascript", "console.css": "text/css", "icon.svg": "image/svg+xml"}


def get_engine() -> Engine:
    """FastAPI dependency: the engine on the ``druidflow_*`` tables, as the plugin's API uses (override in tests)."""
    from druidflow.airflow.plugin import get_engine as plugin_engine

    return plugin_engine()


def _auth() -> list[Any]:
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return [Depends(requires_authenticated())]


def _can_trigger_kill() -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=KILL_DAG_ID))


def _interval_ms(start: Optional[str], end: Optional[str]) -> tuple[Optional[int], Optional[int]]:
    from druidflow.exceptions import SpecError
    from druidflow.intervals import parse_instant

    try:
        a = parse_instant(start, "start") if start else None
        b = parse_instant(end, "end") if end else None
    except SpecError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    if a is not None and b is not None and b <= a:
        raise HTTPException(status_code=400, detail=f"end: must be after start (got {start}/{end})")
    return a, b


def create_console_app() -> FastAPI:
    """The console app (mounted by :class:`druidflow.airflow.plugin.DruidflowPlugin`)."""
    app = FastAPI(title="Druidflow console", dependencies=_auth(), docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        """The console page."""
        return (STATIC / "console.html").read_text(encoding="utf-8")

    @app.get("/static/{name}")
    def asset(name: str) -> FileResponse:
        if name not in _ASSETS:
            raise HTTPException(status_code=404, detail=f"no asset {name!r}")
        return FileResponse(STATIC / name, media_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})

    @app.get("/api/datasources")
    def datasources(engine: Engine = Depends(get_engine)) -> list[dict[str, Any]]:
        """Every dataSource: used and unused segments, rows, bytes, interval, rules, last ingestion, compaction."""
        from druidflow.airflow.console import airflow_side

        with engine.connect() as conn:
            rows = q.datasource_summaries(conn)
        compaction = airflow_side.compaction_state_by_datasource()
        for row in rows:
            row["compaction"] = compaction.get(row["dataSource"])
        return rows

    @app.get("/api/datasources/{data_source}/timeline")
    def timeline(
        data_source: str,
        start: Optional[str] = Query(None, description="window start (ISO instant); default: first segment"),
        end: Optional[str] = Query(None, description="window end (ISO instant); default: last segment end"),
        engine: Engine = Depends(get_engine),
    ) -> dict[str, Any]:
        """Partition sets (chunk × version) in the window with their state, and its gaps; density when crowded."""
        from druidflow.airflow.console.timeline_view import timeline_window

        a, b = _interval_ms(start, end)
        with engine.connect() as conn:
            return timeline_window(conn, data_source, a, b)

    @app.get("/api/datasources/{data_source}/sets")
    def partition_set(
        data_source: str,
        start: str = Query(..., description="the chunk's start (ISO instant)"),
        end: str = Query(..., description="the chunk's end (ISO instant)"),
        version: str = Query(...),
        offset: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=q.MAX_PAGE),
        engine: Engine = Depends(get_engine),
    ) -> dict[str, Any]:
        """One page of a partition set's segments (shard specs, sizes, rows) and the tasks that wrote it."""
        a, b = _interval_ms(start, end)
        if a is None or b is None:
            raise HTTPException(status_code=400, detail=f"start and end: both are required (got {start!r}/{end!r})")
        with engine.connect() as conn:
            page, total = q.chunk_segments(conn, data_source, a, b, version, offset=offset, limit=limit)
            writers = q.writer_tasks(conn, data_source, version)
        return {"dataSource": data_source, "start": start, "end": end, "version": version, "total": total,
                "offset": offset, "segments": page, "writers": writers}

    @app.get("/api/tasks")
    def task_list(
        data_source: Optional[str] = Query(None, alias="dataSource"),
        task_type: Optional[str] = Query(None, alias="type"),
        status: Optional[str] = Query(None, pattern="^(RUNNING|SUCCESS|FAILED)$"),
        offset: int = Query(0, ge=0),
        limit: int = Query(50, ge=1, le=q.MAX_PAGE),
        engine: Engine = Depends(get_engine),
    ) -> dict[str, Any]:
        """One page of tasks, newest first, filtered by dataSource, type and status."""
        with engine.connect() as conn:
            rows, more = q.task_page(conn, data_source=data_source, task_type=task_type, status=status,
                                     offset=offset, limit=limit)
            types = q.task_types(conn)
        return {"tasks": rows, "offset": offset, "more": more, "types": types}

    @app.get("/api/tasks/{task_id}")
    def task(task_id: str, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
        """One task: status, duration, spec, report, and the Airflow run and task instance that ran it."""
        from druidflow.airflow.console import airflow_side

        with engine.connect() as conn:
            found = q.task_detail(conn, task_id)
            if found is None:
                raise HTTPException(status_code=404, detail=f"no task {task_id!r}")
            found["lockEvents"] = q.lock_history(conn, [task_id]).get(task_id, [])
        found["airflow"] = airflow_side.airflow_run_of(task_id, found["createdTime"])
        return found

    @app.get("/api/locks")
    def locks(
        data_source: Optional[str] = Query(None, alias="dataSource"),
        engine: Engine = Depends(get_engine),
    ) -> dict[str, Any]:
        """Every lock row (active, revoked, expired) with its lease; revoked ones with who revoked them."""
        from druidflow.locks import TaskLockbox

        rows = [lock.to_json() for lock in TaskLockbox(engine).locks(datasource=data_source)]
        with engine.connect() as conn:
            history = q.lock_history(conn, sorted({r["taskId"] for r in rows if r["revoked"]}))
        for row in rows:
            row["events"] = history.get(row["taskId"], []) if row["revoked"] else []
        return {"locks": rows}

    @app.get("/api/compaction")
    def compaction() -> dict[str, Any]:
        """The last auto-compaction plan: every chunk's verdict and reason, and the run's outcome."""
        from druidflow.airflow.console import airflow_side

        return airflow_side.last_compaction_plan()

    @app.post("/api/kill/preview")
    def kill_preview(form: dict[str, Any] = Body(...), engine: Engine = Depends(get_engine)) -> dict[str, Any]:
        """A dry run of the kill the form describes: exactly what a confirmed run would delete (writes nothing)."""
        return _kill_dry_run(form, engine)

    @app.post("/api/kill", dependencies=[_can_trigger_kill()])
    def kill_confirm(
        form: dict[str, Any] = Body(...),
        x_requested_by: Optional[str] = Header(None, alias="X-Druidflow-Console"),
        user: Any = Depends(_user_dependency()),  # noqa: B008 - builds the dependency once, as FastAPI expects
    ) -> dict[str, Any]:
        """Trigger ``druidflow_kill`` with ``confirm`` ticked for the form's dataSource and interval."""
        from druidflow.airflow.console import airflow_side

        if not x_requested_by:  # browsers send a custom header only from this origin: no cross-site triggering
            raise HTTPException(status_code=403, detail="missing header X-Druidflow-Console")
        return airflow_side.trigger_kill(KILL_DAG_ID, kill_conf(form), user.get_name())

    return app


def _user_dependency() -> Any:
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def kill_conf(form: dict[str, Any]) -> dict[str, Any]:
    """The ``druidflow_kill`` run conf confirming a previewed kill. With the preview's ``previewedAt`` it becomes the
    kill's ``maxUsedStatusLastUpdatedTime``: the confirmed kill deletes nothing marked unused after the preview."""
    from druidflow.exceptions import SpecError
    from druidflow.intervals import format_instant, parse_instant

    spec, _ = _kill_spec(form)
    conf: dict[str, Any] = {"data_source": spec["dataSource"], "interval": spec["interval"], "confirm": True}
    if form.get("previewedAt"):
        try:
            conf["max_used_status_last_updated_time"] = format_instant(parse_instant(form["previewedAt"], "previewedAt"))
        except SpecError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
    return conf


def _kill_spec(form: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    from druidflow.airflow.kill_form import kill_spec_from_form
    from druidflow.exceptions import SpecError
    from druidflow.specs.tasks import KillTask, parse_task

    fields = {"data_source": form.get("dataSource"), "interval": form.get("interval"), "confirm": False}
    try:
        spec, dry_run = kill_spec_from_form(fields)
        parsed = parse_task(spec)
    except SpecError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    if not isinstance(parsed, KillTask):
        raise HTTPException(status_code=400, detail="type: must be kill")
    spec["interval"] = str(parsed.interval)
    return spec, dry_run


def _kill_dry_run(form: dict[str, Any], engine: Engine) -> dict[str, Any]:
    from druidflow.airflow.no_storage import NoDeepStorage
    from druidflow.exceptions import DruidflowError
    from druidflow.intervals import format_instant, now_ms
    from druidflow.locks import TaskLockbox
    from druidflow.metadata.store import MetadataStore
    from druidflow.tasks import kill
    from druidflow.tasks.runtime import Runtime

    previewed_at = format_instant(now_ms())
    spec, _ = _kill_spec(form)
    rt = Runtime(store=MetadataStore(engine), lockbox=TaskLockbox(engine), storage=NoDeepStorage("the console's kill preview"),
                 work_dir=Path(tempfile.gettempdir()))
    try:
        report = kill.run(spec, rt, dry_run=True)
    except DruidflowError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"spec": spec, "summary": report.summary(), "report": report.model_dump(), "previewedAt": previewed_at}
