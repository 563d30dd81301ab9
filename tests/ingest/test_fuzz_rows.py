"""Fuzzing rows: per input format (JSON lines, CSV, TSV, Parquet) 1,000+ seeded rows, most of them broken, through
real index tasks (SQLite metadata, local deep storage).

For every task: no exception other than Druidflow's own escapes; every input row is counted exactly once
(``processed + processedWithError + unparseable + thrownAway`` equals the rows given, and the rows in the
segments are exactly the processed ones, each once); a task that fails (its ``maxParseExceptions`` is drawn at
random, often too low) leaves the published data as it was; no lock outlives a task.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from druidflow.exceptions import DruidflowError, ParseExceptionLimitExceeded
from druidflow.intervals import Interval
from druidflow.query import visible_rows
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.hostile import DAY, delimited_row, json_row, parquet_file
from tests.index_specs import COUNT_AND_SUM_V, index_task

TASKS = 20
ROWS_PER_TASK = 55

FORMATS = {
    "json": {"type": "json"},
    "csv": {"type": "csv", "columns": ["ts", "id", "d", "v"], "listDelimiter": "|"},
    "tsv": {"type": "tsv", "columns": ["ts", "id", "d", "v"]},
    "parquet": {"type": "parquet", "binaryAsString": True},
}


def _spec(folder: Path, fmt: dict, max_parse_exceptions: int) -> dict:
    return index_task(
        input_source={"type": "local", "baseDir": str(folder), "filter": "*"}, input_format=fmt, dimensions=["id", "d"],
        metrics=COUNT_AND_SUM_V, query_granularity="NONE", rollup=False, intervals=[DAY],
        tuning={"maxParseExceptions": max_parse_exceptions, "maxSavedParseExceptions": 3},
    )


def _write_input(rng: random.Random, fmt: str, folder: Path, first_id: int) -> int:
    """Write one task's input; returns how many rows (physical non-blank lines, or Parquet rows) it holds."""
    folder.mkdir(parents=True)
    if fmt == "parquet":
        rows = 0
        for part in range(5):
            n = ROWS_PER_TASK // 5
            (folder / f"part{part}.parquet").write_bytes(parquet_file(rng, first_id + rows, n))
            rows += n
        return rows
    lines = []
    for i in range(ROWS_PER_TASK):
        line = json_row(rng, first_id + i) if fmt == "json" else delimited_row(rng, first_id + i, "," if fmt == "csv" else "\t")
        lines.extend(part for part in line.split(b"\n"))
    lines = [ln for ln in lines if ln.strip(b" \t\r")]  # blank lines are not rows, in Druid or here
    (folder / "input.dat").write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


def _visible(rt: Runtime) -> list[dict]:
    batches = list(visible_rows(rt.store, rt.storage, "t", Interval.parse(DAY)))
    return sorted(pa.Table.from_batches(batches).to_pylist(), key=repr) if batches else []


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_broken_rows_are_each_counted_once_and_failed_tasks_change_nothing(fmt, sqlite_url, tmp_path):
    rng = random.Random(f"rows-{fmt}")
    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")
    total_rows = 0
    outcomes = Counter()
    for task in range(TASKS):
        folder = tmp_path / f"in{task}"
        rows = _write_input(rng, fmt, folder, task * 1000)
        total_rows += rows
        budget = rng.choice([2**31 - 1, 2**31 - 1, rng.randint(0, 20)])
        before = _visible(rt)
        try:
            report = index.run(_spec(folder, FORMATS[fmt], budget), rt)
        except ParseExceptionLimitExceeded:
            outcomes["failed"] += 1
            assert _visible(rt) == before, f"task {task}: a failed task changed the published data"
        except DruidflowError as exc:
            outcomes[type(exc).__name__] += 1
            assert _visible(rt) == before, f"task {task}: a failed task changed the published data ({exc})"
        except Exception as exc:
            pytest.fail(f"{fmt} task {task}: {type(exc).__name__} escaped: {exc}")
        else:
            outcomes["succeeded"] += 1
            stats = report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
            ingested = stats["processed"] + stats["processedWithError"]
            assert ingested + stats["unparseable"] + stats["thrownAway"] == rows, f"task {task}: {stats} for {rows} rows"
            assert stats["unparseable"] + stats["processedWithError"] <= budget
            visible = _visible(rt) if ingested else []
            assert len(visible) == ingested, f"task {task}: {len(visible)} rows stored for {ingested} ingested"
            ids = [r["id"] for r in visible if r["id"] is not None]
            assert len(ids) == len(set(ids)), f"task {task}: a row was stored twice"
        assert rt.lockbox.locks() == [], f"task {task}: a lock outlived the task"
    print(fmt, total_rows, dict(outcomes))
    assert total_rows >= 1000
    assert outcomes["succeeded"] >= 5, outcomes
