"""The index task end to end, in-process: real metadata DBs (SQLite and PostgreSQL) and real Parquet files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest

from druidflow.exceptions import ParseExceptionLimitExceeded, SpecError
from druidflow.intervals import Interval
from druidflow.query import visible_rows
from druidflow.segments.format import read_descriptor
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.index_specs import COUNT_AND_SUM_V, index_task

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "wikipedia-sample.json"
DIMS = ["page", "language", "user", "country", "isRobot", "namespace"]


def sample_spec(**tuning) -> dict:
    spec = json.loads((ROOT / "examples" / "wikipedia-index.json").read_text())
    spec["spec"]["ioConfig"]["inputSource"]["baseDir"] = str(SAMPLE.parent)
    if tuning:
        spec["spec"]["tuningConfig"] = {"type": "index", **tuning}
    return spec


def inline_spec(data: str, *, fmt: dict | None = None, intervals=("2024-01-01/2024-01-03",), rollup=True, metrics=None, dims=("d",), **extra) -> dict:
    spec = index_task(data=data, input_format=fmt, intervals=intervals, rollup=rollup, metrics=metrics or COUNT_AND_SUM_V, dimensions=dims)
    spec["spec"].update(extra)
    return spec


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def rows_of(rt: Runtime, ds: str, interval: str | None = None) -> pa.Table:
    batches = list(visible_rows(rt.store, rt.storage, ds, Interval.parse(interval) if interval else None))
    return pa.Table.from_batches(batches) if batches else pa.table({})


def input_table() -> pa.Table:
    return pj.read_json(SAMPLE)


def test_sample_ingests_into_daily_rolled_up_segments(rt):
    report = index.run(sample_spec(), rt)
    payload = report.reports["ingestionStatsAndErrors"]["payload"]
    raw = input_table()
    stats = payload["rowStats"]["buildSegments"]
    assert stats["processed"] == raw.num_rows
    assert stats["unparseable"] == stats["thrownAway"] == stats["processedWithError"] == 0
    assert payload["rowStats"]["determinePartitions"]["processed"] == 0  # intervals given: no determine pass

    segments = rt.store.used_segments("wikipedia")
    assert sorted(str(s.interval) for s in segments) == [
        f"2024-01-0{d}T00:00:00.000Z/2024-01-0{d + 1}T00:00:00.000Z" for d in range(1, 8)
    ]
    assert {s.shard_spec.type for s in segments} == {"numbered"}
    assert all(s.shard_spec.partitions == 1 and s.partition_num == 0 for s in segments)
    assert all(s.id == f"wikipedia_{s.interval.__str__().replace('/', '_')}_{s.version}" for s in segments)

    rows = rows_of(rt, "wikipedia")
    # Rollup keeps every metric total and shrinks the rows.
    assert pc.sum(rows["count"]).as_py() == raw.num_rows
    for metric in ("added", "deleted", "delta"):
        assert pc.sum(rows[metric]).as_py() == pc.sum(raw[metric]).as_py()
    # One row per distinct (hour, dimensions) key.
    hour = pc.floor_temporal(pc.cast(raw["timestamp"], pa.timestamp("ms", tz="UTC")), unit="hour")
    keyed = raw.select(DIMS).append_column("hour", hour)
    assert rows.num_rows == keyed.group_by(["hour", *DIMS]).aggregate([]).num_rows
    assert sum(s.num_rows for s in segments) == rows.num_rows
    # Timestamps are truncated to the hour.
    times = rows["__time"].cast(pa.int64())
    assert pc.all(pc.equal(pc.divide(times, 3_600_000), pc.divide(pc.add(times, 0), 3_600_000))).as_py()
    assert pc.sum(pc.not_equal(pc.subtract(times, pc.multiply(pc.divide(times, 3_600_000), 3_600_000)), 0)).as_py() == 0


def test_segment_files_are_plain_parquet_sorted_with_the_descriptor_embedded(rt):
    import duckdb
    import pandas

    index.run(sample_spec(), rt)
    segment = rt.store.used_segments("wikipedia")[0]
    with rt.storage.open_local(segment.load_spec) as path:
        assert path.name == "index.parquet"
        assert f"/wikipedia/{segment.interval.__str__().replace('/', '_')}/{segment.version}/0/" in str(path)
        meta = pq.read_metadata(path)
        table = pq.read_table(path)
        assert table.schema.field("__time").type == pa.timestamp("ms", tz="UTC")
        assert table.column_names == ["__time", *DIMS, "count", "added", "deleted", "delta"]
        col_meta = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
        assert col_meta["page"].compression == "LZ4" or col_meta["page"].compression.startswith("LZ4")
        assert any("DICTIONARY" in e for e in col_meta["page"].encodings)
        # Sorted by time, then the dimensions in spec order.
        keys = table.select(["__time", *DIMS]).to_pylist()
        assert keys == sorted(keys, key=lambda r: (r["__time"], *[(r[d] is not None, r[d] or "") for d in DIMS]))
        # Each segment's dictionaries hold its own values only (not every value of the build).
        page = pq.read_table(path, columns=["page"], read_dictionary=["page"]).column("page")
        stored = {v for chunk in page.chunks for v in chunk.dictionary.to_pylist()}
        assert stored == set(page.to_pylist())
        embedded = read_descriptor(path)
        assert embedded.id == segment.id and embedded.num_rows == table.num_rows
        assert embedded.dimension_names == DIMS and embedded.metric_names == ["count", "added", "deleted", "delta"]
        assert duckdb.sql(f"select sum(count) from '{path}'").fetchall()[0][0] == pc.sum(table["count"]).as_py()
        assert int(pandas.read_parquet(path)["count"].sum()) == pc.sum(table["count"]).as_py()
    assert segment.size > 0 and segment.load_spec["type"] == "local"


def test_classic_firehose_spec_gives_the_same_data(rt):
    classic = json.loads((ROOT / "examples" / "wikipedia-index-classic.json").read_text())
    classic["spec"]["ioConfig"]["firehose"]["baseDir"] = str(SAMPLE.parent)
    classic["spec"]["dataSchema"]["dataSource"] = "wiki_classic"
    index.run(classic, rt)
    index.run(sample_spec(), rt)
    a = rows_of(rt, "wiki_classic")
    b = rows_of(rt, "wikipedia")
    assert a.num_rows == b.num_rows
    assert pc.sum(a["added"]).as_py() == pc.sum(b["added"]).as_py()


def test_overwrite_replaces_each_chunk_with_a_newer_version(rt):
    first = index.run(sample_spec(), rt)
    second = index.run(sample_spec(), rt)
    v1 = {s.version for s in first.segments}
    v2 = {s.version for s in second.segments}
    assert max(v1) < min(v2)
    rows = rows_of(rt, "wikipedia")
    assert pc.sum(rows["count"]).as_py() == input_table().num_rows  # replaced, not doubled
    visible_versions = {s.version for s in rt.store.visible_segments("wikipedia", Interval.parse("2024-01-01/2024-01-08"))}
    assert visible_versions == v2
    old = [r for r in rt.store.segments("wikipedia", include_unused=True) if r.segment.version in v1]
    assert len(old) == 7 and all(not r.used and r.unused_reason == "overshadowed-by-reindex" for r in old)


def test_append_adds_partitions_to_the_existing_version(rt):
    first = index.run(sample_spec(), rt)
    spec = sample_spec()
    spec["spec"]["ioConfig"]["appendToExisting"] = True
    appended = index.run(spec, rt)
    by_chunk = {s.interval: s for s in first.segments}
    for s in appended.segments:
        assert s.version == by_chunk[s.interval].version
        assert s.partition_num == 1
        assert s.id.endswith("_1")
    rows = rows_of(rt, "wikipedia")
    assert pc.sum(rows["count"]).as_py() == 2 * input_table().num_rows


def test_rows_outside_the_intervals_are_thrown_away_and_buckets_expand_outward(rt):
    data = "\n".join(
        json.dumps(r)
        for r in [
            {"ts": "2024-01-01T10:00:00Z", "d": "a", "v": 1},
            {"ts": "2024-01-01T23:59:59.999Z", "d": "a", "v": 2},  # outside the raw interval, inside its DAY bucket
            {"ts": "2024-01-02T00:00:00Z", "d": "a", "v": 4},  # next bucket: thrown away
            {"ts": "2023-12-31T23:00:00Z", "d": "a", "v": 8},  # before: thrown away
        ]
    )
    report = index.run(inline_spec(data, intervals=["2024-01-01T05:00/2024-01-01T12:00"]), rt)
    stats = report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert (stats["processed"], stats["thrownAway"]) == (2, 2)
    assert [str(s.interval) for s in report.segments] == ["2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z"]
    assert pc.sum(rows_of(rt, "t")["v"]).as_py() == 3


def test_without_intervals_a_determine_pass_finds_the_chunks_and_locks_them(rt):
    data = "\n".join(json.dumps({"ts": f"2024-02-0{d}T01:00:00Z", "d": "a", "v": d}) for d in (1, 3, 5))
    report = index.run(inline_spec(data, intervals=None), rt)
    payload = report.reports["ingestionStatsAndErrors"]["payload"]
    assert payload["rowStats"]["determinePartitions"]["processed"] == 3
    assert payload["rowStats"]["buildSegments"]["processed"] == 3
    assert sorted(str(s.interval)[:10] for s in report.segments) == ["2024-02-01", "2024-02-03", "2024-02-05"]
    assert rt.lockbox.locks(datasource="t") == []  # released at the end


def test_parse_errors_are_counted_per_druid_rules(rt):
    data = "\n".join(
        [
            json.dumps({"ts": "2024-01-01T01:00:00Z", "d": "a", "v": 1}),
            json.dumps({"ts": "not a time", "d": "a", "v": 1}),  # unparseable
            json.dumps({"ts": "2024-01-01T02:00:00Z", "d": "b", "v": "twelve"}),  # processedWithError
            "{broken json",  # unparseable
        ]
    )
    spec = inline_spec(data, tuningConfig={"type": "index", "maxSavedParseExceptions": 5})
    report = index.run(spec, rt)
    payload = report.reports["ingestionStatsAndErrors"]["payload"]
    stats = payload["rowStats"]["buildSegments"]
    assert (stats["processed"], stats["processedWithError"], stats["unparseable"], stats["thrownAway"]) == (1, 1, 2, 0)
    assert len(payload["unparseableEvents"]["buildSegments"]) == 3
    rows = sorted(rows_of(rt, "t").to_pylist(), key=lambda r: r["d"])
    assert [(r["d"], r["v"]) for r in rows] == [("a", 1), ("b", None)]


def test_exceeding_max_parse_exceptions_fails_and_publishes_nothing(rt):
    data = "\n".join([json.dumps({"ts": "bad", "d": "a", "v": 1})] * 3 + [json.dumps({"ts": "2024-01-01", "d": "a", "v": 1})])
    spec = inline_spec(data, tuningConfig={"type": "index", "maxParseExceptions": 2})
    with pytest.raises(ParseExceptionLimitExceeded, match="maxParseExceptions=2"):
        index.run(spec, rt)
    assert rt.store.used_segments("t") == []
    assert rt.lockbox.locks(datasource="t") == []
    (task,) = rt.store.list_tasks(datasource="t")
    assert task.status == "FAILED" and "maxParseExceptions" in task.error_msg


def test_report_parse_exceptions_fails_on_the_first_bad_row(rt):
    data = json.dumps({"ts": "bad", "d": "a", "v": 1})
    with pytest.raises(ParseExceptionLimitExceeded):
        index.run(inline_spec(data, tuningConfig={"type": "index", "reportParseExceptions": True}), rt)


def test_intermediate_persists_give_the_same_rows_as_one_pass_in_memory(rt, tmp_path):
    small = index.run(sample_spec(maxRowsInMemory=1000), rt)
    rows_small = rows_of(rt, "wikipedia")
    rt2 = Runtime.from_urls(f"sqlite:///{tmp_path / 'other.db'}", str(tmp_path / "deep2"), tmp_path / "work2")
    index.run(sample_spec(), rt2)
    rows_big = rows_of(rt2, "wikipedia")
    assert rows_small.to_pylist() == rows_big.to_pylist()
    assert len(small.segments) == 7


def test_max_rows_per_segment_cuts_chunks_into_a_complete_core_set(rt):
    report = index.run(sample_spec(partitionsSpec={"type": "dynamic", "maxRowsPerSegment": 500}), rt)
    by_chunk: dict = {}
    for s in report.segments:
        by_chunk.setdefault(s.interval, []).append(s)
    for segs in by_chunk.values():
        n = len(segs)
        assert n > 1
        assert sorted(s.partition_num for s in segs) == list(range(n))
        assert all(s.shard_spec.partitions == n and s.num_rows <= 500 for s in segs)
    assert pc.sum(rows_of(rt, "wikipedia")["count"]).as_py() == input_table().num_rows


def test_publishing_the_same_segments_again_is_a_no_op(rt):
    task = index.submit(sample_spec(), rt)
    index.acquire_locks(task, rt)
    plan = index.determine_partitions(task, rt)
    results = [index.build(task, unit, rt) for unit in plan.build_units]
    first = index.publish(task, plan, results, rt)
    again = index.publish(task, plan, results, rt)
    assert {s.id for s in first.segments} == {s.id for s in again.segments}
    assert len(rt.store.segments("wikipedia", include_unused=True)) == len(first.segments)
    index.release(task.task_id, rt)


def test_a_new_version_becomes_visible_only_when_all_its_partitions_are_published(rt):
    index.run(sample_spec(), rt)
    old = {s.id for s in rt.store.visible_segments("wikipedia", Interval.parse("2024-01-01/2024-01-02"))}
    task = index.submit(sample_spec(partitionsSpec={"type": "dynamic", "maxRowsPerSegment": 300}), rt)
    index.acquire_locks(task, rt)
    plan = index.determine_partitions(task, rt)
    unit = next(u for u in plan.build_units if str(u.chunks[0].interval).startswith("2024-01-01"))
    result = index.build(task, unit, rt)
    assert len(result.segments) > 1
    # Publish all but one partition of the new core set (as a crash half-way through a non-atomic publish would).
    partial = index.BuildResult(task_id=task.task_id, segments=result.segments[:-1])
    n = len(result.segments)
    partial_segments = [s.model_copy(update={"shard_spec": s.shard_spec.model_copy(update={"partitions": n})}) for s in partial.segments]
    rt.store.publish_segments(partial_segments)
    assert {s.id for s in rt.store.visible_segments("wikipedia", Interval.parse("2024-01-01/2024-01-02"))} == old
    index.publish(task, plan, [result], rt)
    now = {s.id for s in rt.store.visible_segments("wikipedia", Interval.parse("2024-01-01/2024-01-02"))}
    assert now == {s.id for s in result.segments}
    index.release(task.task_id, rt)


def test_invalid_specs_fail_before_any_work_naming_the_field(rt):
    spec = sample_spec()
    spec["spec"]["dataSchema"]["granularitySpec"]["segmentGranularity"] = "FORTNIGHT"
    with pytest.raises(SpecError) as err:
        index.run(spec, rt)
    assert "segmentGranularity" in str(err.value) and "FORTNIGHT" in str(err.value)
    spec = sample_spec(indexSpec={"dimensionCompression": "lzf"})
    with pytest.raises(SpecError, match="lzf"):
        index.run(spec, rt)
    assert rt.store.used_segments("wikipedia") == []


def test_csv_with_multi_value_dimensions_and_a_transform_filter(rt):
    data = "ts,d,tags,v\n2024-01-01T01:00:00Z,a,x|y,1\n2024-01-01T01:30:00Z,a,y|x,2\n2024-01-01T02:00:00Z,b,z,4\n2024-01-01T03:00:00Z,c,z,8\n"
    spec = inline_spec(
        data,
        fmt={"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"},
        dims=("d", "tags"),
    )
    spec["spec"]["dataSchema"]["transformSpec"] = {
        "transforms": [{"type": "expression", "name": "v", "expression": "v * 10"}],
        "filter": {"type": "not", "field": {"type": "selector", "dimension": "d", "value": "c"}},
    }
    report = index.run(spec, rt)
    stats = report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert (stats["processed"], stats["thrownAway"]) == (3, 1)
    rows = rows_of(rt, "t").to_pylist()
    # x|y and y|x are the same sorted array, so they roll up together.
    assert [(r["d"], r["tags"], r["count"], r["v"]) for r in rows] == [("a", ["x", "y"], 2, 30), ("b", ["z"], 1, 40)]


def test_rollup_false_keeps_rows_and_query_granularity_none_keeps_milliseconds(rt):
    data = "\n".join(json.dumps({"ts": "2024-01-01T01:00:00.123Z", "d": "a", "v": i}) for i in range(3))
    spec = inline_spec(data, rollup=False)
    spec["spec"]["dataSchema"]["granularitySpec"]["queryGranularity"] = "NONE"
    index.run(spec, rt)
    rows = rows_of(rt, "t")
    assert rows.num_rows == 3
    assert {t.as_py().isoformat() for t in rows["__time"]} == {"2024-01-01T01:00:00.123000+00:00"}


def test_first_and_last_metrics_keep_their_times_for_later_combining(rt):
    data = "\n".join(
        json.dumps({"ts": f"2024-01-01T01:0{m}:00Z", "d": "a", "v": v}) for m, v in [(5, 50), (1, 10), (9, 90)]
    )
    metrics = [{"type": "longFirst", "name": "f", "fieldName": "v"}, {"type": "longLast", "name": "l", "fieldName": "v"}]
    index.run(inline_spec(data, metrics=metrics), rt)
    (row,) = rows_of(rt, "t").to_pylist()
    assert (row["f"], row["l"]) == (10, 90)


def test_deep_storage_on_s3_over_http(db_url, tmp_path, s3_server):
    bucket = s3_server.make_bucket()
    rt = Runtime.from_urls(db_url, f"s3://{bucket}/segments", tmp_path / "work", **s3_server.options)
    index.run(sample_spec(), rt)
    segments = rt.store.used_segments("wikipedia")
    assert len(segments) == 7 and {s.load_spec["type"] for s in segments} == {"s3"}
    assert pc.sum(rows_of(rt, "wikipedia")["count"]).as_py() == input_table().num_rows


def test_reindexing_from_segments_uses_the_combining_aggregators(rt):
    index.run(sample_spec(), rt)
    spec = {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "wiki_daily",
                "timestampSpec": {"column": "__time", "format": "millis"},
                "dimensionsSpec": {"dimensions": ["language"]},
                "metricsSpec": [
                    {"type": "longSum", "name": "count", "fieldName": "count"},
                    {"type": "longSum", "name": "added", "fieldName": "added"},
                ],
                "granularitySpec": {"segmentGranularity": "WEEK", "queryGranularity": "DAY", "intervals": ["2024-01-01/2024-01-08"]},
            },
            "ioConfig": {"type": "index", "inputSource": {"type": "druid", "dataSource": "wikipedia", "interval": "2024-01-01/2024-01-08"}},
        },
    }
    index.run(spec, rt)
    raw = input_table()
    rows = rows_of(rt, "wiki_daily")
    assert pc.sum(rows["count"]).as_py() == raw.num_rows  # a sum of counts, not a count of rolled-up rows
    assert pc.sum(rows["added"]).as_py() == pc.sum(raw["added"]).as_py()
    assert rows.num_rows == len({(r["__time"], r["language"]) for r in rows.to_pylist()})


def test_joda_timestamp_patterns_with_fractions_of_a_second(rt):
    data = "\n".join(json.dumps({"ts": f"2024/01/01 0{h}:30:00.250", "d": "a", "v": h}) for h in (1, 2))
    spec = inline_spec(data)
    spec["spec"]["dataSchema"]["timestampSpec"] = {"column": "ts", "format": "yyyy/MM/dd HH:mm:ss.SSS"}
    spec["spec"]["dataSchema"]["granularitySpec"]["queryGranularity"] = "NONE"
    report = index.run(spec, rt)
    assert report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]["processed"] == 2
    times = sorted(t.as_py().isoformat() for t in rows_of(rt, "t")["__time"])
    assert times == ["2024-01-01T01:30:00.250000+00:00", "2024-01-01T02:30:00.250000+00:00"]


def test_aggregators_with_expressions(rt):
    data = "\n".join(json.dumps({"ts": "2024-01-01T01:00:00Z", "d": "a", "v": v, "w": 2}) for v in (1, 2, 3))
    metrics = [{"type": "longSum", "name": "vw", "expression": "v * w"}, {"type": "doubleMax", "name": "top", "expression": "v / 2.0"}]
    index.run(inline_spec(data, metrics=metrics), rt)
    (row,) = rows_of(rt, "t").to_pylist()
    assert (row["vw"], row["top"]) == (12, 1.5)


def test_an_append_that_writes_several_segments_per_chunk_gets_distinct_partitions(rt):
    index.run(sample_spec(), rt)
    spec = sample_spec(partitionsSpec={"type": "dynamic", "maxRowsPerSegment": 1000})
    spec["spec"]["ioConfig"]["appendToExisting"] = True
    appended = index.run(spec, rt)
    per_chunk: dict = {}
    for s in appended.segments:
        per_chunk.setdefault(s.interval, []).append(s.partition_num)
    assert all(sorted(p) == list(range(1, len(p) + 1)) and len(p) > 1 for p in per_chunk.values())
    assert pc.sum(rows_of(rt, "wikipedia")["count"]).as_py() == 2 * input_table().num_rows


def test_schemaless_dimensions_are_discovered_as_druid_does(rt):
    data = "\n".join(json.dumps({"ts": "2024-01-01T01:00:00Z", "d": "a", "e": i % 2, "skip": "x", "v": 1}) for i in range(4))
    spec = inline_spec(data, dims=())
    spec["spec"]["dataSchema"]["dimensionsSpec"] = {"dimensions": [], "dimensionExclusions": ["skip"]}
    report = index.run(spec, rt)
    (segment,) = report.segments
    # Every input column but the timestamp, the exclusions and the metrics' inputs, as strings.
    assert segment.dimension_names == ["d", "e"]
    rows = sorted(rows_of(rt, "t").to_pylist(), key=lambda r: r["e"])
    assert [(r["d"], r["e"], r["count"]) for r in rows] == [("a", "0", 2), ("a", "1", 2)]


def test_tsv_input_and_max_bytes_in_memory_persists(rt):
    lines = ["ts\td\tv"] + [f"2024-01-0{1 + i % 2}T0{i % 10}:00:00Z\tk{i}\t{i}" for i in range(2000)]
    spec = inline_spec(
        "\n".join(lines),
        fmt={"type": "tsv", "findColumnsFromHeader": True},
        tuningConfig={"type": "index", "maxBytesInMemory": 20_000},
    )
    task = index.submit(spec, rt)
    index.acquire_locks(task, rt)
    plan = index.determine_partitions(task, rt)
    result = index.build_units(task, plan.build_units, rt)
    assert result.persists > 0  # the byte budget forced intermediate persists
    index.publish(task, plan, [result], rt)
    index.release(task.task_id, rt)
    rows = rows_of(rt, "t")
    assert pc.sum(rows["v"]).as_py() == sum(range(2000))
    assert pc.sum(rows["count"]).as_py() == 2000


def test_s3_input_source_over_http(db_url, tmp_path, s3_server):
    bucket = s3_server.make_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="in/part-0.json", Body=SAMPLE.read_bytes())
    rt = Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")
    spec = sample_spec()
    spec["spec"]["ioConfig"]["inputSource"] = {"type": "s3", "prefixes": [f"s3://{bucket}/in/"], **s3_server.input_source_config}
    index.run(spec, rt)
    assert pc.sum(rows_of(rt, "wikipedia")["count"]).as_py() == input_table().num_rows


def test_http_input_source(rt, tmp_path):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SAMPLE.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        spec = sample_spec()
        spec["spec"]["ioConfig"]["inputSource"] = {"type": "http", "uris": [f"http://127.0.0.1:{server.server_port}/{SAMPLE.name}"]}
        index.run(spec, rt)
    finally:
        server.shutdown()
    assert pc.sum(rows_of(rt, "wikipedia")["count"]).as_py() == input_table().num_rows


def test_a_run_longer_than_the_lock_lease_keeps_its_locks(db_url, tmp_path, monkeypatch):
    from druidflow.locks import TaskLockbox

    rt = Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")
    # A 3 s lease renewed every second: a loaded 2-core machine can starve the heartbeat thread for about a second,
    # which a 1 s lease did not survive; the build still outlasts the lease twice over.
    rt.lockbox = TaskLockbox(rt.store.engine, lease_seconds=3)
    slow_build = index.build_units

    def build_slowly(*args, **kwargs):
        import time

        time.sleep(7)  # well past the 3 s lease
        return slow_build(*args, **kwargs)

    monkeypatch.setattr(index, "build_units", build_slowly)
    report = index.run(sample_spec(), rt)
    assert len(report.segments) == 7
