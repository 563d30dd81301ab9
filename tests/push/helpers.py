"""Realtime specs and events for the stream-push tests."""

from __future__ import annotations

import json
from typing import Any, Optional

from druidflow.push.spec import RealtimeTask


def realtime_spec(data_source: str = "events", *, segment: str = "HOUR", window: str = "PT10M", buffer_size: int = 100_000,
                  handoff_delay: str = "PT0S", policy: str = "serverTime", max_rows_in_memory: int = 1000,
                  service_name: Optional[str] = None, rollup: bool = False) -> dict[str, Any]:
    firehose: dict[str, Any] = {"type": "receiver", "bufferSize": buffer_size}
    if service_name:
        firehose["serviceName"] = service_name
    return {
        "type": "index_realtime",
        "spec": {
            "dataSchema": {
                "dataSource": data_source,
                "timestampSpec": {"column": "ts", "format": "millis"},
                "dimensionsSpec": {"dimensions": ["id", "client"]},
                "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "value", "fieldName": "value"}],
                "granularitySpec": {"segmentGranularity": segment, "queryGranularity": "NONE", "rollup": rollup},
            },
            "ioConfig": {"type": "realtime", "firehose": firehose},
            "tuningConfig": {"type": "realtime", "windowPeriod": window, "maxRowsInMemory": max_rows_in_memory,
                             "handoffDelay": handoff_delay, "rejectionPolicy": {"type": policy}},
        },
    }


def realtime_task(**kwargs: Any) -> RealtimeTask:
    return RealtimeTask.load(realtime_spec(**kwargs))


def ndjson(events: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def events(ts: int, ids: range | list[str], client: str = "c0", value: int = 1) -> list[dict[str, Any]]:
    return [{"ts": ts, "id": str(i), "client": client, "value": value} for i in ids]


def published_ids(rt: Any, data_source: str) -> list[str]:
    from druidflow.query import visible_rows

    out: list[str] = []
    for batch in visible_rows(rt.store, rt.storage, data_source):
        out.extend(str(v) for v in batch.column("id").to_pylist())
    return out
