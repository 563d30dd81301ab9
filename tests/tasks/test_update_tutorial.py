"""Druid's "Updating existing data" tutorial, run with Druid's own spec files (retyped in
:mod:`tests.druid_tutorial_specs`, which cites their sources), against its documented results.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from druidflow.query import visible_rows
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.druid_tutorial_specs import (
    DATA,
    UPDATES_APPEND_INDEX,
    UPDATES_APPEND_INDEX2,
    UPDATES_APPEND_INDEX_FIREHOSE,
    UPDATES_INIT_INDEX,
    UPDATES_OVERWRITE_INDEX,
)

# The tutorial's SELECT * results, as (__time, animal, count, number).
AFTER_OVERWRITE = [
    ("2018-01-01T01:01:00.000Z", "lion", 1, 100),
    ("2018-01-01T03:01:00.000Z", "aardvark", 1, 9999),
    ("2018-01-01T04:01:00.000Z", "bear", 1, 111),
]
AFTER_COMBINE = [
    ("2018-01-01T01:01:00.000Z", "lion", 2, 400),
    ("2018-01-01T03:01:00.000Z", "aardvark", 1, 9999),
    ("2018-01-01T04:01:00.000Z", "bear", 1, 111),
    ("2018-01-01T05:01:00.000Z", "mongoose", 1, 737),
    ("2018-01-01T06:01:00.000Z", "snake", 1, 1234),
    ("2018-01-01T07:01:00.000Z", "octopus", 1, 115),
]
AFTER_APPEND = sorted(AFTER_COMBINE + [("2018-01-01T04:01:00.000Z", "bear", 1, 222), ("2018-01-01T09:01:00.000Z", "falcon", 1, 1241)])


@pytest.fixture
def rt(db_url, tmp_path, monkeypatch) -> Runtime:
    tutorial = tmp_path / "quickstart" / "tutorial"
    tutorial.mkdir(parents=True)
    for name, rows in DATA.items():
        (tutorial / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def rows(rt: Runtime) -> list[tuple]:
    table = pa.Table.from_batches(list(visible_rows(rt.store, rt.storage, "updates-tutorial", None)))
    out = []
    for r in table.to_pylist():
        stamp = r["__time"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
        out.append((stamp, r["animal"], r["count"], r["number"]))
    return sorted(out)


def load_and_overwrite(rt: Runtime) -> None:
    index.run(json.loads(UPDATES_INIT_INDEX), rt)
    index.run(json.loads(UPDATES_OVERWRITE_INDEX), rt)
    assert rows(rt) == sorted(AFTER_OVERWRITE)


def test_combining_input_source_rolls_existing_segments_up_with_the_new_file(rt):
    load_and_overwrite(rt)
    report = index.run(json.loads(UPDATES_APPEND_INDEX), rt)
    assert report.status == "SUCCESS"
    assert rows(rt) == sorted(AFTER_COMBINE)
    stats = report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert (stats["processed"], stats["unparseable"]) == (3 + 4, 0)  # 3 rows re-read from segments, 4 from the file
    # The spec's top-level maxRowsPerSegment next to its partitionsSpec: ignored, as Druid does, and said so.
    assert report.reports["ingestionStatsAndErrors"]["payload"]["warnings"] == [
        "spec.tuningConfig.maxRowsPerSegment: ignored: partitionsSpec is given, and Druid then ignores the deprecated top-level field"
    ]

    index.run(json.loads(UPDATES_APPEND_INDEX2), rt)
    assert rows(rt) == AFTER_APPEND  # appended: the new bear row is not rolled up with the old one


def test_combining_firehose_with_an_ingest_segment_delegate(rt):
    load_and_overwrite(rt)
    report = index.run(json.loads(UPDATES_APPEND_INDEX_FIREHOSE), rt)
    assert report.status == "SUCCESS"
    assert rows(rt) == sorted(AFTER_COMBINE)
    assert [str(s.interval) for s in report.segments] == ["2018-01-01T00:00:00.000Z/2018-01-08T00:00:00.000Z"]  # WEEK


def test_ingest_segment_firehose_reads_each_rows_time_from_the_segments(rt):
    """The classic reindexing spec: the parser's timestampSpec names the *file's* column; rows re-read from segments
    keep their ``__time`` (before, every row was unparseable and nothing was published)."""
    load_and_overwrite(rt)
    spec = json.loads(UPDATES_APPEND_INDEX_FIREHOSE)
    spec["spec"]["ioConfig"]["firehose"] = {"type": "ingestSegment", "dataSource": "updates-tutorial", "interval": "2018-01-01/2018-01-03"}
    report = index.run(spec, rt)
    stats = report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert (stats["processed"], stats["unparseable"], len(report.segments)) == (3, 0, 1)
    assert rows(rt) == sorted(AFTER_OVERWRITE)


def test_a_druid_source_whose_timestamp_spec_names_a_segment_column_applies_it(rt):
    """Druid >= 0.20 applies the timestampSpec to re-read rows when it names a column they have."""
    load_and_overwrite(rt)
    spec = json.loads(UPDATES_APPEND_INDEX)
    spec["spec"]["dataSchema"]["timestampSpec"] = {"column": "__time", "format": "millis"}
    spec["spec"]["ioConfig"]["inputSource"] = {"type": "druid", "dataSource": "updates-tutorial", "interval": "2018-01-01/2018-01-03"}
    spec["spec"]["ioConfig"].pop("inputFormat")
    spec["spec"]["dataSchema"]["transformSpec"] = {
        "transforms": [{"type": "expression", "name": "__time", "expression": "__time + 3600000"}]
    }
    index.run(spec, rt)
    assert [r[0] for r in rows(rt)] == ["2018-01-01T02:01:00.000Z", "2018-01-01T04:01:00.000Z", "2018-01-01T05:01:00.000Z"]


def test_every_row_unparseable_succeeds_with_druids_no_valid_rows_message(rt):
    """Druid ends such a task SUCCESS with a status message ("No valid rows ... All rows may have invalid timestamps
    or have been filtered out.", ParallelIndexSupervisorTask); Druidflow does the same instead of a silent success."""
    spec = json.loads(UPDATES_INIT_INDEX)
    spec["spec"]["dataSchema"]["timestampSpec"]["column"] = "time"  # not in updates-data.json
    report = index.run(spec, rt)
    payload = report.reports["ingestionStatsAndErrors"]["payload"]
    assert report.status == "SUCCESS" and report.segments == []
    assert payload["errorMsg"].startswith("No valid rows: 3 unparseable and 0 thrown away")
    assert "invalid timestamps" in payload["errorMsg"]
    assert rt.store.get_task(report.task_id).error_msg == payload["errorMsg"]


def _units(rt: Runtime, spec: dict) -> list:
    task = index.submit(spec, rt)
    index.acquire_locks(task, rt)
    try:
        return index.determine_partitions(task, rt).build_units
    finally:
        index.release(task.task_id, rt)


def test_max_num_concurrent_sub_tasks_bounds_the_build_units(rt):
    spec = json.loads(UPDATES_INIT_INDEX)
    spec["spec"]["tuningConfig"].update({"forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "numShards": 3}})
    assert len(_units(rt, spec)) == 2 * 3  # one per (day, shard)
    spec["spec"]["tuningConfig"]["maxNumConcurrentSubTasks"] = 4
    units = _units(rt, spec)
    assert [len(u.chunks) for u in units] == [2, 2, 1, 1]  # every (day, shard) exactly once, over 4 units
    assert sorted((str(c.interval), c.shards[0].partition_num) for u in units for c in u.chunks) == sorted(
        (f"2018-01-0{d}T00:00:00.000Z/2018-01-0{d + 1}T00:00:00.000Z", n) for d in (1, 2) for n in range(3)
    )
    spec["spec"]["tuningConfig"]["maxNumConcurrentSubTasks"] = 1  # Druid's sequential mode
    assert len(_units(rt, spec)) == 1
    report = index.run(spec, rt)
    assert report.status == "SUCCESS" and rows(rt) == sorted(
        [("2018-01-01T01:01:00.000Z", "tiger", 1, 100), ("2018-01-01T03:01:00.000Z", "aardvark", 1, 42), ("2018-01-01T03:01:00.000Z", "giraffe", 1, 14124)]
    )


def test_no_valid_rows_without_intervals_is_reported_from_the_determine_pass(rt):
    spec = json.loads(UPDATES_INIT_INDEX)
    spec["spec"]["dataSchema"]["timestampSpec"]["column"] = "time"
    del spec["spec"]["dataSchema"]["granularitySpec"]["intervals"]
    report = index.run(spec, rt)
    assert report.segments == []
    assert report.reports["ingestionStatsAndErrors"]["payload"]["errorMsg"].startswith("No valid rows: 3 unparseable")
