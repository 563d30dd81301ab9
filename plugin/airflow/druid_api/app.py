"""The FastAPI app serving Druid's Overlord and Coordinator APIs, mounted at ``/druid`` on the Airflow API server,
so a Druid client reaches ``/druid/indexer/v1/task`` and ``/druid/coordinator/v1/...`` by changing only host and
port. Every route, the OpenAPI schema and the docs page included, needs an authenticated Airflow user."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

URL_PREFIX = "/druid"


def create_app() -> FastAPI:
    from druidflow.airflow.druid_api.auth import druid_user
    from druidflow.airflow.druid_api.coordinator import router as coordinator
    from druidflow.airflow.druid_api.errors import install_error_handlers
    from druidflow.airflow.druid_api.overlord import router as overlord
    from druidflow.airflow.kafka_api import router as supervisors

    app = FastAPI(
        title="Druidflow: Druid Overlord and Coordinator API",
        description="Druid's task and segment-metadata HTTP API; tasks run as Airflow DAG runs.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind authentication
        dependencies=[Depends(druid_user)],
    )
    app.include_router(overlord)
    app.include_router(supervisors)
    app.include_router(coordinator)
    install_error_handlers(app)
    add_authenticated_docs(app)
    return app


def add_authenticated_docs(app: FastAPI) -> None:
    """Serve ``/openapi.json`` and ``/docs`` as ordinary routes of ``app``, so the app's authentication
    dependencies guard them too (FastAPI's built-in docs routes skip them). Create ``app`` with
    ``docs_url=None, redoc_url=None, openapi_url=None``."""

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title=app.title)


def plugin_app() -> dict[str, Any]:
    """The ``fastapi_apps`` entry of the Druidflow plugin."""
    return {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Druid Overlord and Coordinator API"}
