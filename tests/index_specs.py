"""Index task specs for tests: Druid's JSON with the fields a test varies as arguments, the rest as small defaults
(an ISO ``ts`` column, dimension ``d``, a count)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Optional

COUNT = [{"type": "count", "name": "count"}]
COUNT_AND_SUM_V = [{"type": "count", "name": "count"}, {"type": "longSum", "name": "v", "fieldName": "v"}]


def json_lines(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def index_task(
    *,
    data_source: str = "t",
    task_id: Optional[str] = None,
    data: Optional[str] = None,
    input_source: Optional[dict[str, Any]] = None,
    input_format: Optional[dict[str, Any]] = None,
    timestamp_format: str = "auto",
    dimensions: Sequence[str | dict[str, Any]] = ("d",),
    metrics: Optional[list[dict[str, Any]]] = None,
    segment_granularity: str = "DAY",
    query_granularity: str = "HOUR",
    rollup: Optional[bool] = None,
    intervals: Optional[Sequence[str]] = ("2024-01-01/2024-01-03",),
    io: Optional[dict[str, Any]] = None,
    tuning: Optional[dict[str, Any]] = None,
    context: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """An ``index`` task reading ``data`` inline (JSON lines unless ``input_format`` says otherwise) or from
    ``input_source``."""
    granularity: dict[str, Any] = {"segmentGranularity": segment_granularity, "queryGranularity": query_granularity}
    if rollup is not None:
        granularity["rollup"] = rollup
    if intervals is not None:
        granularity["intervals"] = list(intervals)
    source = input_source if input_source is not None else {"type": "inline", "data": data or ""}
    spec: dict[str, Any] = {
        "dataSchema": {
            "dataSource": data_source,
            "timestampSpec": {"column": "ts", "format": timestamp_format},
            "dimensionsSpec": {"dimensions": list(dimensions)},
            "metricsSpec": COUNT if metrics is None else metrics,
            "granularitySpec": granularity,
        },
        "ioConfig": {"type": "index", "inputSource": source, "inputFormat": input_format or {"type": "json"}, **(io or {})},
    }
    if tuning is not None:
        spec["tuningConfig"] = {"type": "index", **tuning}
    task: dict[str, Any] = {"type": "index"}
    if task_id is not None:
        task["id"] = task_id
    if context is not None:
        task["context"] = context
    task["spec"] = spec
    return task
