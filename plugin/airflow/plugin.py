"""The Druidflow Airflow plugin: a read-only JSON API and a status page, mounted at ``/druidflow`` on the API server.

Endpoints (all need an authenticated Airflow user: a ``Bearer`` token from ``POST /auth/token`` or the UI's session
cookie):

* ``GET /druidflow/datasources``: every dataSource with used segments: segment count, rows, bytes, time range.
* ``GET /druidflow/datasources/{dataSource}/segments?interval=&include_unused=``: segment payloads.
* ``GET /druidflow/tasks?dataSource=&active=&limit=``: tasks, newest first (Druid's TaskStatusPlus);
  ``GET /druidflow/tasks/{id}``: one task with its spec (``payload``) and report (``ingestionStatsAndErrors``).
* ``GET /druidflow/locks?dataSource=&task_id=``: every lock with its state and lease.
* ``GET /druidflow/ui``: an HTML summary, linked from the UI's *Browse* menu.
* ``GET /druidflow/push``: pending events per pushed dataSource; the push endpoints themselves
  (``POST /v1/post/{dataSource}``, ``POST /druid/worker/v1/chat/{serviceName}/push-events``) are in
  :mod:`druidflow.airflow.push_api`.

The API server may use Airflow's ORM, but it reads Druidflow's tables through the same Connection the tasks use
(``[druidflow] metadata_conn_id``, default ``druidflow_metadata``) so both always see the same database; without
that Connection it falls back to Airflow's own database, where ``airflow db migrate`` created the tables.
"""

from __future__ import annotations

import html
import logging
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

URL_PREFIX = "/druidflow"


@lru_cache(maxsize=1)
def _engine_from_config() -> Engine:
    from airflow.configuration import conf

    from druidflow.airflow.hooks import DruidflowMetadataHook
    from druidflow.metadata.engine import make_engine

    conn_id = conf.get("druidflow", "metadata_conn_id", fallback=DruidflowMetadataHook.default_conn_name)
    try:
        return DruidflowMetadataHook(metadata_conn_id=conn_id).engine
    except Exception as exc:
        log.info("Druidflow plugin: Connection %r not usable (%s); reading Airflow's metadata DB", conn_id, exc)
        from airflow import settings

        if settings.SQL_ALCHEMY_CONN is None:  # not configured (no Airflow DB either): say both
            raise RuntimeError(f"Druidflow plugin: Connection {conn_id!r} not usable ({exc}) and Airflow's metadata DB is not configured") from exc
        return make_engine(settings.SQL_ALCHEMY_CONN)


def get_engine() -> Engine:
    """FastAPI dependency: the engine on the database holding the ``druidflow_*`` tables (override in tests)."""
    return _engine_from_config()


def _auth_dependencies() -> list[Any]:
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return [Depends(requires_authenticated())]


def create_app() -> FastAPI:
    """The plugin's FastAPI app (every route requires an authenticated Airflow user)."""
    from druidflow.metadata.tables import segments

    app = FastAPI(
        title="Druidflow",
        description="Read-only view of Druidflow's dataSources, segments, tasks and locks.",
        dependencies=_auth_dependencies(),
        docs_url=None,  # served below behind authentication, like every other route
        redoc_url=None,
        openapi_url=None,
    )
    from druidflow.airflow.druid_api.app import add_authenticated_docs

    add_authenticated_docs(app)
    seg = segments.c

    @app.get("/datasources")
    def list_datasources(engine: Engine = Depends(get_engine)) -> list[dict[str, Any]]:
        """Every dataSource with at least one used segment."""
        query = (
            sa.select(
                seg.dataSource,
                sa.func.count().label("segments"),
                sa.func.coalesce(sa.func.sum(seg.num_rows), 0).label("rows"),
                sa.func.coalesce(sa.func.sum(seg.size), 0).label("size"),
                sa.func.min(seg.start_ms).label("min_ms"),
                sa.func.max(seg.end_ms).label("max_ms"),
            )
            .where(seg.used.is_(True))
            .group_by(seg.dataSource)
            .order_by(seg.dataSource)
        )
        from druidflow.intervals import format_instant

        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            {
                "dataSource": r["dataSource"],
                "segments": int(r["segments"]),
                "rows": int(r["rows"]),
                "size": int(r["size"]),
                "interval": f"{format_instant(r['min_ms'])}/{format_instant(r['max_ms'])}",
            }
            for r in rows
        ]

    @app.get("/datasources/{data_source}/segments")
    def list_segments(
        data_source: str,
        interval: str | None = Query(None, description="only segments overlapping this ISO interval"),
        include_unused: bool = Query(False, description="also segments marked unused"),
        engine: Engine = Depends(get_engine),
    ) -> list[dict[str, Any]]:
        """Segment payloads of a dataSource with their used flag, by interval and version."""
        from druidflow.exceptions import SpecError
        from druidflow.intervals import Interval
        from druidflow.metadata.store import MetadataStore

        try:
            iv = Interval.parse(interval, "interval") if interval else None
        except SpecError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        records = MetadataStore(engine).segments(data_source, iv, include_unused=include_unused)
        return [record.as_dict() for record in records]

    @app.get("/tasks")
    def list_tasks(
        data_source: str | None = Query(None, alias="dataSource"),
        active: bool | None = Query(None, description="true: running tasks only; false: complete ones only"),
        limit: int = Query(100, ge=1, le=10_000),
        engine: Engine = Depends(get_engine),
    ) -> list[dict[str, Any]]:
        """Tasks, newest first, in Druid's TaskStatusPlus shape (see ``/tasks/{id}`` for spec and report)."""
        from druidflow.metadata.store import MetadataStore

        return [t.status_plus() for t in MetadataStore(engine).list_tasks(data_source, active, limit)]

    @app.get("/tasks/{task_id}")
    def get_task(task_id: str, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
        """One task: its status, its spec (``payload``) and its report (``ingestionStatsAndErrors``...)."""
        from druidflow.metadata.store import MetadataStore

        record = MetadataStore(engine).get_task(task_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no task {task_id!r}")
        return {**record.status_plus(), "payload": record.payload, "report": record.report}

    @app.get("/locks")
    def list_locks(
        data_source: str | None = Query(None, alias="dataSource"),
        task_id: str | None = Query(None),
        engine: Engine = Depends(get_engine),
    ) -> list[dict[str, Any]]:
        """Every lock (active, revoked and recently expired), by dataSource and interval."""
        from druidflow.locks import TaskLockbox

        return [lock.to_json() for lock in TaskLockbox(engine).locks(datasource=data_source, task_id=task_id)]

    from druidflow.airflow.push_api import default_service, status_router

    app.include_router(status_router(default_service, get_engine))

    @app.get("/ui", response_class=HTMLResponse)
    def status_page(engine: Engine = Depends(get_engine)) -> str:
        """An HTML summary of dataSources, recent tasks and locks."""
        return _render_page(
            list_datasources(engine), list_tasks(None, None, 50, engine), list_locks(None, None, engine)
        )

    return app


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc('' if r.get(c) is None else str(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    ) or f'<tr><td colspan="{len(columns)}">none</td></tr>'
    return f"<h2>{esc(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _render_page(datasources: list[dict], tasks_: list[dict], locks: list[dict]) -> str:
    style = (
        "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}table{border-collapse:collapse;"
        "margin-bottom:2rem}td,th{border:1px solid #ccc;padding:.25rem .6rem;font-size:.9rem;text-align:left}"
        "th{background:#f3f3f3}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Druidflow</title><style>{style}</style></head>"
        "<body><h1>Druidflow</h1>"
        + _table("DataSources", datasources, ["dataSource", "segments", "rows", "size", "interval"])
        + _table("Recent tasks", tasks_, ["id", "type", "dataSource", "status", "createdTime", "duration", "errorMsg"])
        + _table("Locks", locks, ["dataSource", "interval", "type", "version", "priority", "taskId", "state"])
        + "</body></html>"
    )


def druid_api_app() -> dict[str, Any]:
    """Druid's Overlord and Coordinator API at ``/druid`` (see :mod:`druidflow.airflow.druid_api`)."""
    from druidflow.airflow.druid_api.app import plugin_app

    return plugin_app()


def _console_app() -> dict[str, Any]:
    from druidflow.airflow.console.app import URL_PREFIX as CONSOLE_PREFIX
    from druidflow.airflow.console.app import create_console_app

    return {"app": create_console_app(), "url_prefix": CONSOLE_PREFIX, "name": "Druidflow console"}


def _push_apps() -> list[dict[str, Any]]:
    from druidflow.airflow.push_api import plugin_fastapi_apps

    return plugin_fastapi_apps()


class DruidflowPlugin(AirflowPlugin):
    """Mounts the Druidflow API at ``/druidflow``, Druid's Overlord/Coordinator API at ``/druid`` and the console at
    ``/druidflow-console``, and adds the pages to the UI's navigation (*Druidflow console* at the top level,
    *Browse > Druidflow* for the plain summary)."""

    name = "druidflow"
    # Stream push mounts /v1 and /druid/worker: they come before the app mounted at /druid itself.
    fastapi_apps = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Druidflow"},
        *_push_apps(),
        druid_api_app(),
        _console_app(),
    ]
    external_views = [
        {
            "name": "Druidflow",
            "href": f"{URL_PREFIX}/ui",
            "destination": "nav",
            "category": "browse",
            "url_route": "druidflow",
        },
        {
            "name": "Druidflow console",
            "href": "/druidflow-console/",
            "destination": "nav",
            "url_route": "druidflow_console",
            "nav_top_level": True,
            "icon": "/druidflow-console/static/icon.svg",
        },
    ]
