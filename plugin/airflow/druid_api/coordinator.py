"""Druid's Coordinator metadata API at ``/druid/coordinator/v1``: dataSources and their segments, marking
segments unused and used, and retention rules. Intervals in paths use ``_`` for ``/``, as in Druid."""

from __future__ import annotations

import json
from typing import Any, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Engine

from druidflow.airflow.druid_api.auth import authorize, druid_user
from druidflow.airflow.druid_api.deps import get_engine
from druidflow.airflow.druid_api.errors import DruidApiError
from druidflow.airflow.druid_api.task_dags import SEGMENT_ADMIN_DAG

router = APIRouter(prefix="/coordinator/v1", tags=["Coordinator"])

DROPPED_BY_USER = "dropped-by-user"
#: Druid's default rule when a dataSource has none (what ``?full`` appends).
DEFAULT_RULES = [{"type": "loadForever", "tieredReplicants": {"_default_tier": 2}}]


def _store(engine: Engine):
    from druidflow.metadata.store import MetadataStore

    return MetadataStore(engine)


def _interval(text: str, field: str):
    from druidflow.intervals import Interval

    return Interval.parse(text.replace("_", "/"), field)


def _used(engine: Engine, data_source: str) -> list:
    segments = _store(engine).used_segments(data_source)
    if not segments:
        raise DruidApiError(404, f"dataSource [{data_source}] has no used segments", field="dataSourceName", value=data_source)
    return segments


def _summary(segments: list) -> dict[str, Any]:
    from druidflow.intervals import format_instant

    return {
        "minTime": format_instant(min(s.interval.start for s in segments)),
        "maxTime": format_instant(max(s.interval.end for s in segments)),
        "size": sum(int(s.size or 0) for s in segments),
        "count": len(segments),
    }


def _can_read(user: Any) -> None:
    authorize(user, "GET", None, "read segment metadata")


def _can_write(user: Any) -> None:
    authorize(user, "POST", SEGMENT_ADMIN_DAG, "change segment metadata or rules")


@router.get("/datasources")
def list_datasources(
    request: Request, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)
) -> list:
    """Names of the dataSources with used segments; ``?simple`` adds their summary, ``?full`` their segments."""
    _can_read(user)
    params = request.query_params
    names = _store(engine).datasources(used_only=True)
    if "full" in params:
        return [{"name": n, "properties": {}, "segments": [s.payload() for s in _used(engine, n)]} for n in names]
    if "simple" in params:
        return [{"name": n, "properties": {"tiers": {}, "segments": _summary(_used(engine, n))}} for n in names]
    return names


@router.get("/datasources/{data_source}")
def get_datasource(
    data_source: str, request: Request, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)
) -> dict:
    """``{"tiers": {}, "segments": {minTime, maxTime, size, count}}``; ``?full``: the segments too."""
    _can_read(user)
    segments = _used(engine, data_source)
    if "full" in request.query_params:
        return {"name": data_source, "properties": {}, "segments": [s.payload() for s in segments]}
    return {"tiers": {}, "segments": _summary(segments)}


@router.get("/datasources/{data_source}/segments")
def get_datasource_segments(
    data_source: str, request: Request, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)
) -> list:
    """Ids of the used segments; ``?full``: their payloads."""
    _can_read(user)
    segments = _used(engine, data_source)
    if "full" in request.query_params:
        return [s.payload() for s in segments]
    return [s.id for s in segments]


@router.get("/datasources/{data_source}/intervals")
def get_datasource_intervals(
    data_source: str, request: Request, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)
) -> Any:
    """The intervals of the used segments, newest first; ``?simple``: ``{interval: {size, count}}``; ``?full``:
    ``{interval: {segmentId: {"metadata": payload, "servers": []}}}``."""
    _can_read(user)
    segments = _used(engine, data_source)
    by_interval: dict[Any, list] = {}
    for s in segments:
        by_interval.setdefault(s.interval, []).append(s)
    ordered = sorted(by_interval, key=lambda iv: (iv.start, iv.end), reverse=True)
    if "full" in request.query_params:
        return {str(iv): {s.id: {"metadata": s.payload(), "servers": []} for s in by_interval[iv]} for iv in ordered}
    if "simple" in request.query_params:
        return {str(iv): {"size": sum(int(s.size or 0) for s in by_interval[iv]), "count": len(by_interval[iv])} for iv in ordered}
    return [str(iv) for iv in ordered]


@router.get("/datasources/{data_source}/segments/{segment_id}")
def get_datasource_segment(
    data_source: str, segment_id: str, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)
) -> dict:
    """One used segment's payload."""
    _can_read(user)
    record = _store(engine).get_segment(segment_id)
    if record is None or not record.used or record.segment.data_source != data_source:
        raise DruidApiError(404, f"segment [{segment_id}] of [{data_source}] not found", field="segmentId", value=segment_id)
    return record.segment.payload()


@router.delete("/datasources/{data_source}/intervals/{interval}")
def delete_interval(
    data_source: str, interval: str, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)
) -> dict:
    """Mark unused every used segment lying inside the interval (files stay until a kill)."""
    _can_write(user)
    _known(engine, data_source)
    changed = _store(engine).mark_unused(data_source, interval=_interval(interval, "interval"), reason=DROPPED_BY_USER)
    return {"numChangedSegments": changed}


@router.delete("/datasources/{data_source}")
def delete_datasource(data_source: str, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)) -> dict:
    """Mark every segment of the dataSource unused."""
    _can_write(user)
    _known(engine, data_source)
    return {"numChangedSegments": _store(engine).mark_unused(data_source, reason=DROPPED_BY_USER)}


async def _selection_body(request: Request) -> tuple[Optional[Any], Optional[list[str]]]:
    try:
        body = json.loads(await request.body() or b"null")
    except json.JSONDecodeError as exc:
        raise DruidApiError(400, f"the request body is not JSON: {exc}", field="body") from None
    if not isinstance(body, dict):
        raise DruidApiError(400, "the body is {\"interval\": ...} or {\"segmentIds\": [...]}", field="body", value=body)
    interval, ids = body.get("interval"), body.get("segmentIds")
    if (interval is None) == (ids is None):
        raise DruidApiError(400, "give exactly one of 'interval' and 'segmentIds'", field="interval", value=interval)
    if ids is not None and not (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)):
        raise DruidApiError(400, "segmentIds: a non-empty list of segment ids", field="segmentIds", value=ids)
    unknown = set(body) - {"interval", "segmentIds"}
    if unknown:
        field = sorted(unknown)[0]
        raise DruidApiError(400, f"{field}: not supported here (only interval or segmentIds)", field=field, value=body[field])
    return (_interval(interval, "interval") if interval is not None else None), ids


def _known(engine: Engine, data_source: str) -> None:
    if data_source not in _store(engine).datasources():
        raise DruidApiError(404, f"dataSource [{data_source}] not found", field="dataSourceName", value=data_source)


@router.post("/datasources/{data_source}/markUnused")
async def mark_unused(
    data_source: str, request: Request, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)
) -> dict:
    """Mark unused the used segments inside ``interval``, or those of ``segmentIds``."""
    _can_write(user)
    interval, ids = await _selection_body(request)
    _known(engine, data_source)
    changed = _store(engine).mark_unused(data_source, interval=interval, segment_ids=ids, reason=DROPPED_BY_USER)
    return {"numChangedSegments": changed}


@router.post("/datasources/{data_source}/markUsed")
async def mark_used(
    data_source: str, request: Request, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)
) -> dict:
    """Mark used again the unused segments inside ``interval``, or those of ``segmentIds``, that no used
    segment overshadows."""
    _can_write(user)
    interval, ids = await _selection_body(request)
    _known(engine, data_source)
    from druidflow.exceptions import DruidflowError

    try:
        changed = _store(engine).mark_used(data_source, interval=interval, segment_ids=ids)
    except DruidflowError as exc:
        raise DruidApiError(409, str(exc), field="segmentIds" if ids else "interval") from None
    return {"numChangedSegments": changed}


@router.get("/rules")
def all_rules(user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)) -> dict:
    """Every dataSource's rules, with Druid's default under ``_default``."""
    _can_read(user)
    return {"_default": DEFAULT_RULES, **_store(engine).all_rules()}


@router.get("/rules/{data_source}")
def get_rules(
    data_source: str, request: Request, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)
) -> list:
    """The dataSource's rules; ``?full`` appends the default rules, as Druid evaluates them."""
    _can_read(user)
    rules = _store(engine).get_rules(data_source)
    return rules + DEFAULT_RULES if "full" in request.query_params else rules


@router.post("/rules/{data_source}")
async def set_rules(
    data_source: str, request: Request, user: Any = Depends(druid_user), engine: Engine = Depends(get_engine)
) -> Response:
    """Replace the dataSource's rules (a JSON list, first match wins), validated first."""
    _can_write(user)
    from druidflow.exceptions import SpecError
    from druidflow.retention import parse_rules
    from druidflow.specs.validation import check_druid_id

    try:
        check_druid_id(data_source, "dataSourceName")
    except SpecError as exc:
        raise DruidApiError(400, f"dataSourceName: {exc.reason}", field="dataSourceName", value=data_source) from None
    try:
        rules = json.loads(await request.body() or b"null")
    except json.JSONDecodeError as exc:
        raise DruidApiError(400, f"the request body is not JSON: {exc}", field="rules") from None
    parse_rules(rules, "rules")
    _store(engine).set_rules(data_source, rules)
    return Response(status_code=200)
