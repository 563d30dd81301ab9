"""Fuzzing task specs: 1,200 seeded mutations of valid index, compact and kill specs.

Every spec either parses or fails with a SpecError (or another Druidflow error) that names its field path; no
other exception escapes. A sample of the specs that parse is run against a dataSource that already has
published data: a task that fails leaves the published data as it was and no lock behind.
"""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest

from druidflow.exceptions import DruidflowError, SpecError
from druidflow.query import visible_rows
from druidflow.specs.tasks import parse_task
from druidflow.tasks.dispatch import run_task
from druidflow.tasks.runtime import Runtime
from tests.hostile import DAY, GOOD_TS, mutate

SPECS_PER_BASE = 300
RUNS = 40
ROWS = "\n".join(json.dumps({"ts": GOOD_TS, "d": d, "v": i}) for i, d in enumerate("abcab"))


def _index(fmt: dict, data: str, tuning: dict | None = None) -> dict:
    return {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "t",
                "timestampSpec": {"column": "ts", "format": "auto"},
                "dimensionsSpec": {"dimensions": ["d", {"type": "long", "name": "n"}]},
                "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "v", "fieldName": "v"}],
                "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "intervals": [DAY]},
                "transformSpec": {
                    "transforms": [{"type": "expression", "name": "n", "expression": "v * 2 + 1"}],
                    "filter": {"type": "or", "fields": [{"type": "selector", "dimension": "d", "value": "a"}, {"type": "not", "field": {"type": "selector", "dimension": "d", "value": "z"}}]},
                },
            },
            "ioConfig": {"type": "index", "inputSource": {"type": "inline", "data": data}, "inputFormat": fmt, "appendToExisting": False},
            "tuningConfig": {"type": "index", "maxRowsInMemory": 1000, "maxParseExceptions": 10, **(tuning or {"maxRowsPerSegment": 1000})},
        },
        "context": {"priority": 60, "taskLockTimeout": 5000},
    }


BASES = {
    "index-json": _index({"type": "json"}, ROWS),
    "index-csv-hashed": _index(
        {"type": "csv", "columns": ["ts", "d", "v"], "listDelimiter": "|"},
        "\n".join(f"{GOOD_TS},{d},{i}" for i, d in enumerate(["a", "b|c", "a"])),
        {"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "numShards": 2, "partitionDimensions": ["d"]}},
    ),
    "compact": {
        "type": "compact",
        "dataSource": "t",
        "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": DAY}},
        "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "HOUR"},
        "tuningConfig": {"type": "index_parallel", "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 100}},
        "context": {"priority": 25},
    },
    "kill": {"type": "kill", "dataSource": "t", "interval": DAY, "batchSize": 10, "limit": 5, "context": {"priority": 10}},
}


def _visible(rt: Runtime) -> list[dict]:
    batches = list(visible_rows(rt.store, rt.storage, "t", None))
    rows = pa.Table.from_batches(batches).to_pylist() if batches else []
    return sorted(rows, key=repr)


@pytest.mark.slow
def test_mutated_specs_fail_only_with_field_named_errors_and_failed_runs_change_nothing(sqlite_url, tmp_path):
    rng = random.Random(15)
    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")
    run_task(BASES["index-json"], rt)
    outcomes = {"parsed": 0, "refused": 0, "ran": 0, "failed": 0}
    to_run = []
    for name, base in BASES.items():
        parse_task(base)  # the bases themselves are valid
        for i in range(SPECS_PER_BASE):
            spec = mutate(rng, base, rng.randint(1, 3))
            try:
                parse_task(spec)
            except SpecError as exc:
                outcomes["refused"] += 1
                assert exc.path, f"{name} #{i}: a SpecError without a field path: {exc}"
                continue
            except DruidflowError:
                outcomes["refused"] += 1
                continue
            except Exception as exc:
                pytest.fail(f"{name} #{i}: {type(exc).__name__} escaped parsing: {exc}\nspec: {json.dumps(spec, default=str)[:2000]}")
            outcomes["parsed"] += 1
            to_run.append((name, i, spec))
    rng.shuffle(to_run)
    for name, i, spec in to_run[:RUNS]:
        before = _visible(rt)
        try:
            run_task(spec, rt)
            outcomes["ran"] += 1
        except DruidflowError:
            outcomes["failed"] += 1
            assert _visible(rt) == before, f"{name} #{i}: a failed task changed the published data"
        except Exception as exc:
            pytest.fail(f"{name} #{i}: {type(exc).__name__} escaped the run: {exc}\nspec: {json.dumps(spec, default=str)[:2000]}")
        assert rt.lockbox.locks() == [], f"{name} #{i}: a lock outlived the task"
        if not rt.store.used_segments("t"):
            run_task(BASES["index-json"], rt)  # keep some published data to protect
    assert outcomes["parsed"] + outcomes["refused"] == SPECS_PER_BASE * len(BASES) >= 1000
    print(outcomes)
    assert outcomes["refused"] > 300 and outcomes["parsed"] > 50, outcomes
