"""Stream push on the Airflow API server: the push apps of :mod:`druidflow.push.http` behind the plugin's
authentication, their specs from a folder and a Variable, and ``GET /druidflow/push`` (pending events).

Airflow mounts a plugin app under any URL prefix but ``/api/v2``, ``/ui``, ``/execution``, ``/auth`` and
``/pluginsv2``, and before its own UI routes, so both Druid paths are served exactly as Druid spells them: one app
at ``/v1`` (``POST /v1/post/{dataSource}``) and one at ``/druid/worker``
(``POST /druid/worker/v1/chat/{serviceName}/push-events``).

Specs: every ``*.json`` in ``DRUIDFLOW_PUSH_SPECS`` or ``[druidflow] push_spec_dir``, and the Variable
``druidflow_push_specs`` (a JSON list of realtime specs), re-read every 10 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Depends
from sqlalchemy.engine import Engine

from druidflow.push.http import FIREHOSE_PREFIX, TRANQUILITY_PREFIX, PushService, create_push_apps
from druidflow.push.registry import (
    VARIABLE_KEY,
    CachedRegistry,
    PushRegistry,
    spec_dir_from_env,
    specs_from_dir,
    specs_from_document,
)

log = logging.getLogger(__name__)


def _airflow_registry() -> PushRegistry:
    specs: list[tuple[str, Any]] = []
    directory = spec_dir_from_env()
    if directory is None:
        from airflow.configuration import conf

        configured = conf.get("druidflow", "push_spec_dir", fallback=None)
        directory = Path(configured) if configured else None
    if directory is not None and directory.is_dir():
        specs.extend(specs_from_dir(directory))
    try:
        from airflow.models import Variable

        specs.extend(specs_from_document(Variable.get(VARIABLE_KEY, default_var=None)))
    except Exception as exc:
        log.warning("push specs: Variable %s not readable: %s", VARIABLE_KEY, exc)
    return PushRegistry.of(specs)


def _engine() -> Engine:
    from druidflow.airflow.plugin import get_engine

    return get_engine()


_service: Optional[PushService] = None


def default_service() -> PushService:
    """The API server's one PushService (its counters are shared by the push apps and the status route)."""
    global _service
    if _service is None:
        _service = PushService(CachedRegistry(_airflow_registry), _engine)
    return _service


def plugin_fastapi_apps() -> list[dict[str, Any]]:
    """The ``fastapi_apps`` entries of the Druidflow plugin for stream push. They must come before any app mounted
    at ``/druid`` itself, since a mount takes every path under its prefix."""
    from druidflow.airflow.plugin import _auth_dependencies

    tranquility, firehose = create_push_apps(default_service(), _auth_dependencies())
    return [
        {"app": tranquility, "url_prefix": TRANQUILITY_PREFIX, "name": "Druidflow stream push (Tranquility)"},
        {"app": firehose, "url_prefix": FIREHOSE_PREFIX, "name": "Druidflow stream push (EventReceiverFirehose)"},
    ]


def status_router(service: Callable[[], PushService], engine_dependency: Callable[..., Engine]) -> APIRouter:
    """``GET /push`` for the plugin's main app: pending events per pushed dataSource."""
    router = APIRouter()

    @router.get("/push")
    def push_status(engine: Engine = Depends(engine_dependency)) -> dict[str, Any]:
        """Pending (spooled, not handed off) and committed events per dataSource; counters; specs not loaded."""
        from druidflow.push import spool

        svc = service()
        registry = svc.registry()
        rows = {s.data_source: s.to_json() for s in spool.summary(engine)}
        out = []
        for ds in sorted(set(rows) | set(registry.tasks)):
            row = rows.get(ds) or spool.PendingSummary(ds, 0, 0, 0, None, 0, None).to_json()
            task = registry.tasks.get(ds)
            row["configured"] = task is not None
            if task is not None:
                row["serviceName"] = task.service_name
                row["bufferSize"] = task.spec.io_config.firehose.buffer_size
                row["windowPeriod"] = task.tuning.window_period
            row["sinceStart"] = svc.counter(ds).to_json() if ds in svc.counters else None
            out.append(row)
        return {"dataSources": out, "specErrors": registry.errors}

    return router
