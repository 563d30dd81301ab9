"""The stream-push endpoints as FastAPI apps, independent of Airflow (which mounts them: druidflow.airflow.push_api).

* ``POST /post/{dataSource}`` (mounted at ``/v1``) — Tranquility Server: a JSON array or JSON lines; answers
  ``{"result": {"received": N, "sent": M}}`` (``M < N`` when events fell outside the window).
* ``POST /v1/chat/{serviceName}/push-events`` (mounted at ``/druid/worker``) — the EventReceiverFirehose: answers
  ``{"eventCount": N, "sent": M}`` (Druid's ``eventCount``: the events received).

A 2xx answer means the kept events are committed to the spool. Errors: 400 malformed JSON (naming the line),
404 unknown dataSource/serviceName, 413 body over the limit (``DRUIDFLOW_PUSH_MAX_BODY_BYTES``, default 10 MiB,
checked after gzip decoding too), 415 Smile, 429 spool full (with ``Retry-After``), 503 when the spool's database
cannot be written (nothing was kept; retry).
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from druidflow.push.receiver import DEFAULT_MAX_BODY_BYTES, PushCounters, PushError, receive
from druidflow.push.registry import CachedRegistry, PushRegistry, specs_from_dir
from druidflow.push.spec import RealtimeTask

log = logging.getLogger(__name__)

TRANQUILITY_PREFIX = "/v1"
FIREHOSE_PREFIX = "/druid/worker"
MAX_BODY_ENV = "DRUIDFLOW_PUSH_MAX_BODY_BYTES"


def max_body_bytes() -> int:
    return int(os.environ.get(MAX_BODY_ENV) or DEFAULT_MAX_BODY_BYTES)


class PushService:
    """What the routes need: the registry, the spool's engine, the body limit and this process's counters."""

    def __init__(self, registry: Callable[[], PushRegistry], engine: Callable[[], Engine], max_body: Optional[int] = None) -> None:
        self.registry = registry
        self.engine = engine
        self.max_body = max_body
        self.counters: dict[str, PushCounters] = {}

    def counter(self, data_source: str) -> PushCounters:
        return self.counters.setdefault(data_source, PushCounters())

    async def push(self, lookup: Callable[[PushRegistry], Optional[RealtimeTask]], name: str, kind: str, request: Request
    ) -> Any:  # the receiver's counts, or a JSONResponse refusing the push
        # The registry may re-read its specs (files, a Variable in the DB): not on the event loop.
        task = await run_in_threadpool(lambda: lookup(self.registry()))
        if task is None:
            raise HTTPException(status_code=404, detail=f"no realtime spec accepts pushes for {kind} {name!r}")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in ("application/x-jackson-smile", "application/smile"):
            raise HTTPException(status_code=415, detail="Smile is not supported; send JSON")
        body = await _read_body(request, self.max_body or max_body_bytes())
        try:
            result = await run_in_threadpool(receive, task, body, self.engine())
        except PushError as exc:
            if exc.status == 429:
                self.counter(task.data_source).refused_full += 1
                return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after_s or 1)})
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        except SQLAlchemyError as exc:
            log.warning("push to %s not spooled: %s", task.data_source, exc)
            return JSONResponse({"error": f"the spool could not be written; nothing was kept: {type(exc).__name__}"},
                                status_code=503, headers={"Retry-After": "1"})
        self.counter(task.data_source).add(result)
        return result


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413, detail=f"the body has {declared} bytes; the limit is {limit}")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail=f"the body is over the limit of {limit} bytes")
        parts.append(chunk)
    body = b"".join(parts)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise HTTPException(status_code=400, detail=f"the gzip body is corrupt: {exc}") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise HTTPException(status_code=413, detail=f"the decompressed body is over the limit of {limit} bytes")
    return body


def create_push_apps(service: PushService, dependencies: Optional[list[Any]] = None) -> tuple[FastAPI, FastAPI]:
    """The Tranquility app (mount at ``/v1``) and the EventReceiverFirehose app (mount at ``/druid/worker``); every
    route gets ``dependencies`` (the API server's authentication)."""
    deps = dependencies or []

    tranquility = FastAPI(title="Druidflow stream push (Tranquility)", dependencies=deps)

    @tranquility.post("/post/{data_source}")
    async def tranquility_post(data_source: str, request: Request) -> Any:
        """Push events (a JSON array or JSON lines) to a dataSource."""
        result = await service.push(lambda r: r.by_data_source(data_source), data_source, "dataSource", request)
        if isinstance(result, JSONResponse):
            return result
        return {"result": {"received": result.received, "sent": result.sent}}

    firehose = FastAPI(title="Druidflow stream push (EventReceiverFirehose)", dependencies=deps)

    @firehose.post("/v1/chat/{service_name}/push-events")
    async def push_events(service_name: str, request: Request) -> Any:
        """Push events (a JSON array or JSON lines) to the receiver firehose named ``serviceName``."""
        result = await service.push(lambda r: r.by_service(service_name), service_name, "serviceName", request)
        if isinstance(result, JSONResponse):
            return result
        return {"eventCount": result.received, "sent": result.sent}

    tranquility.state.push_service = firehose.state.push_service = service
    return tranquility, firehose




def standalone_app(spec_dir: Path, engine: Engine) -> FastAPI:
    """Both push apps under one root, with specs from ``spec_dir`` and no authentication (loopback only)."""
    registry = CachedRegistry(lambda: PushRegistry.of(specs_from_dir(spec_dir)))
    service = PushService(registry, lambda: engine)
    tranquility, firehose = create_push_apps(service)
    root = FastAPI(title="Druidflow stream push (standalone)")
    root.mount(FIREHOSE_PREFIX, firehose)
    root.mount(TRANQUILITY_PREFIX, tranquility)
    root.state.push_service = service
    return root
