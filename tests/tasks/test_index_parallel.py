"""``index_parallel``: the input split once, partial segments per split, a merge per (chunk, partition), one publish.

Every test compares against the ``index`` task on the same rows (the single-process reference) or against the
rows themselves, and checks perfect rollup: a rollup key lives in exactly one segment of its chunk. The spec
fields are Druid's (docs/ingestion/native-batch.md: ``maxNumConcurrentSubTasks``, ``maxRetry``,
``splitHintSpec`` ``{"type": "maxSize", "maxSplitSize", "maxNumFiles"}``, partitionsSpec with
``forceGuaranteedRollup``).
"""

from __future__ import annotations

import copy
import json
import os

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from druidflow.exceptions import SpecError
from druidflow.inputs import open_input
from druidflow.inputs.splits import MaxSizeSplitHint, narrowed_source, parse_split_hint, plan_splits, split_objects
from druidflow.specs.io import parse_input_format, parse_input_source
from druidflow.tasks import index, parallel
from druidflow.tasks.parallel.segment_splits import segment_splits
from druidflow.tasks.runtime import Runtime
from tests.tasks.test_index import rows_of
from tests.tasks.test_index_partitioning import dup_heavy_rows, segment_rows
from tests.test_cli import druidflow


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def write_files(tmp_path, rows, n_files=3, fmt="json"):
    d = tmp_path / "input"
    d.mkdir(parents=True, exist_ok=True)
    per = (len(rows) + n_files - 1) // n_files
    for i in range(n_files):
        part = rows[i * per : (i + 1) * per]
        if fmt == "json":
            text = "".join(json.dumps(r) + "\n" for r in part)
        else:
            text = "ts,a,b,v\n" + "".join(f"{r['ts']},{r['a']},{r['b']},{r['v']}\n" for r in part)
        (d / f"part-{i}.{fmt}").write_text(text)
    return d


def parallel_spec(base_dir, partitions, *, fmt="json", intervals=("2024-01-01/2024-01-03",), split=None, concurrency=None, ds="pp"):
    gran = {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "rollup": True}
    if intervals is not None:
        gran["intervals"] = list(intervals)
    tuning = {"type": "index_parallel", "forceGuaranteedRollup": partitions["type"] != "dynamic", "partitionsSpec": partitions}
    if split is not None:
        tuning["splitHintSpec"] = split
    if concurrency is not None:
        tuning["maxNumConcurrentSubTasks"] = concurrency
    input_format = {"type": "json"} if fmt == "json" else {"type": "csv", "findColumnsFromHeader": True}
    return {
        "type": "index_parallel",
        "spec": {
            "dataSchema": {
                "dataSource": ds,
                "timestampSpec": {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["a", "b"]},
                "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "v", "fieldName": "v"}],
                "granularitySpec": gran,
            },
            "ioConfig": {
                "type": "index_parallel",
                "inputSource": {"type": "local", "baseDir": str(base_dir), "filter": f"*.{fmt}"},
                "inputFormat": input_format,
            },
            "tuningConfig": tuning,
        },
    }


def as_index(spec):
    """The same task as a single-process ``index`` task (the reference)."""
    spec = copy.deepcopy(spec)
    spec["type"] = "index"
    spec["spec"]["ioConfig"]["type"] = "index"
    tuning = spec["spec"]["tuningConfig"]
    for k in ("splitHintSpec", "maxNumConcurrentSubTasks", "maxRetry"):
        tuning.pop(k, None)
    tuning["type"] = "index"
    spec["spec"]["dataSchema"]["dataSource"] = "ref"
    return spec


def visible(rt, ds):
    t = rows_of(rt, ds)
    t = t.set_column(0, "__time", t.column("__time").cast(pa.int64()))
    return sorted(t.select(["__time", "a", "b", "count", "v"]).to_pylist(), key=lambda r: (r["__time"], r["a"], r["b"]))


def assert_perfect_rollup(rt, segments):
    seen = set()
    for s in segments:
        for r in segment_rows(rt, s):
            key = (s.interval, r["__time"], r["a"], r["b"])
            assert key not in seen, f"rollup key {key} in two segments"
            seen.add(key)


def splits_of(spec):
    task = parallel.DEFINITION.parse_task(spec, "")
    io, tuning = task.spec.io_config, task.spec.tuning_config
    return plan_splits(io.input_source, io.input_format, parse_split_hint(tuning.split_hint_spec), tuning.max_num_concurrent_sub_tasks or 1)


def partial_files(tmp_path):
    root = tmp_path / "deep" / parallel.PARTIALS
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# ------------------------------------------------------------------------------------------------ splits


def test_byte_ranges_cover_every_line_once_with_the_header_repeated(tmp_path):
    rows = dup_heavy_rows(3000)
    for fmt in ("json", "csv"):
        d = write_files(tmp_path / fmt, rows, n_files=1, fmt=fmt)
        source = parse_input_source({"type": "local", "baseDir": str(d), "filter": f"*.{fmt}"})
        input_format = parse_input_format({"type": "json"} if fmt == "json" else {"type": "csv", "findColumnsFromHeader": True})
        size = (d / f"part-0.{fmt}").stat().st_size
        splits = plan_splits(source, input_format, MaxSizeSplitHint(max_split_size=size // 7 + 1))
        assert len(splits) == 7 and all(s.pieces[0].end is not None for s in splits)
        got, processed_bytes = [], 0
        for split in splits:
            reader = open_input(narrowed_source(source, split), input_format)
            for batch in reader.read_objects(split_objects(reader.objects(), split, input_format)):
                got.extend(batch.data.to_pylist())
                processed_bytes += batch.bytes_read
        assert [str(r["a"]) for r in got] == [r["a"] for r in rows]  # every row once, in order
        header = len("ts,a,b,v\n") if fmt == "csv" else 0
        assert processed_bytes == size + 0 * header  # repeated header lines are not counted again


def test_s3_objects_are_cut_into_byte_ranges_read_by_ranged_gets(tmp_path, s3_server):
    """An S3 object splits as a local file does: every line once, the CSV header repeated, and each split's
    reader asks the server only for the bytes from its range on (a ranged GET), stopping after its last line."""
    bucket, client = s3_server.make_bucket(), s3_server.client()
    rows = dup_heavy_rows(3000)
    bodies = {
        "json": "".join(json.dumps(r) + "\n" for r in rows).encode(),
        "csv": ("ts,a,b,v\n" + "".join(f"{r['ts']},{r['a']},{r['b']},{r['v']}\n" for r in rows)).encode(),
    }
    for fmt, body in bodies.items():
        client.put_object(Bucket=bucket, Key=f"in/part.{fmt}", Body=body)
        source = parse_input_source({"type": "s3", "uris": [f"s3://{bucket}/in/part.{fmt}"], **s3_server.input_source_config})
        input_format = parse_input_format({"type": "json"} if fmt == "json" else {"type": "csv", "findColumnsFromHeader": True})
        splits = plan_splits(source, input_format, MaxSizeSplitHint(max_split_size=len(body) // 7 + 1))
        assert len(splits) == 7 and all(s.pieces[0].end is not None for s in splits)
        got, processed_bytes = [], 0
        for split in splits:
            reader = open_input(narrowed_source(source, split), input_format)
            (obj,) = split_objects(reader.objects(), split, input_format)
            ranges: list[str] = []
            obj.inner.client.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: ranges.append(params.get("Range", "")))
            for batch in reader.read_objects([obj]):
                got.extend(batch.data.to_pylist())
                processed_bytes += batch.bytes_read
            first = split.pieces[0].start
            assert f"bytes={max(first - 1, 0)}-" in ranges  # the range itself, not the whole object
            assert all(r for r in ranges)  # no un-ranged GET (a header re-read is a ranged GET from 0)
        assert [str(r["a"]) for r in got] == [r["a"] for r in rows]  # every row once, in order
        assert processed_bytes == len(body)  # repeated header lines are not counted again
    quoted = b'ts,a,b,v\n' + b''.join(f'{r["ts"]},"{r["a"]}",{r["b"]},{r["v"]}\n'.encode() for r in rows)
    client.put_object(Bucket=bucket, Key="q/quoted.csv", Body=quoted)
    source = parse_input_source({"type": "s3", "uris": [f"s3://{bucket}/q/quoted.csv"], **s3_server.input_source_config})
    csv = parse_input_format({"type": "csv", "findColumnsFromHeader": True})
    assert len(plan_splits(source, csv, MaxSizeSplitHint(max_split_size=len(quoted) // 7 + 1))) == 1  # a quote: never cut


def test_parallel_over_s3_ranges_equals_index(rt, tmp_path, s3_server):
    bucket, client = s3_server.make_bucket(), s3_server.client()
    rows = dup_heavy_rows(6000)
    client.put_object(Bucket=bucket, Key="in/all.json", Body="".join(json.dumps(r) + "\n" for r in rows).encode())
    spec = parallel_spec(tmp_path, {"type": "hashed", "numShards": 3}, split={"type": "maxSize", "maxSplitSize": 50_000})
    spec["spec"]["ioConfig"]["inputSource"] = {"type": "s3", "prefixes": [f"s3://{bucket}/in/"], **s3_server.input_source_config}
    assert len(splits_of(spec)) > 3
    report = parallel.run(spec, rt)
    index.run(as_index(spec), rt)
    assert visible(rt, "pp") == visible(rt, "ref")
    assert report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]["processed"] == len(rows)
    assert_perfect_rollup(rt, report.segments)


def test_files_group_into_splits_by_size_and_count(tmp_path):
    d = write_files(tmp_path, dup_heavy_rows(600), n_files=6)
    source = parse_input_source({"type": "local", "baseDir": str(d), "filter": "*.json"})
    fmt = parse_input_format({"type": "json"})
    one = plan_splits(source, fmt, MaxSizeSplitHint())
    assert len(one) == 1 and len(one[0].pieces) == 6  # Druid's default: 1GiB, 1000 files per split
    assert [len(s.pieces) for s in plan_splits(source, fmt, MaxSizeSplitHint(max_num_files=4))] == [4, 2]
    gz = tmp_path / "gz"
    gz.mkdir()
    import gzip

    (gz / "a.json.gz").write_bytes(gzip.compress((d / "part-0.json").read_bytes()))
    gz_source = parse_input_source({"type": "local", "baseDir": str(gz), "filter": "*.gz"})
    assert len(plan_splits(gz_source, fmt, MaxSizeSplitHint(max_split_size=10))) == 1  # compressed: never cut


def test_the_split_hint_is_parsed_as_druid_writes_it():
    assert parse_split_hint({"type": "maxSize", "maxSplitSize": "512MiB", "maxNumFiles": 3}).max_split_size == 512 * 1024**2
    assert parse_split_hint(None).max_split_size == 1024**3
    segments = parse_split_hint({"type": "segments", "maxInputSegmentBytesPerTask": "1MiB", "maxNumSegments": 4})
    assert (segments.max_input_segment_bytes_per_task, segments.max_num_segments) == (1024**2, 4)
    with pytest.raises(SpecError, match=r"splitHintSpec\.type"):
        parse_split_hint({"type": "hashed"})
    with pytest.raises(SpecError, match=r"splitHintSpec\.maxSplitSize"):
        parse_split_hint({"type": "maxSize", "maxSplitSize": "lots"})


# ---------------------------------------------------------------------------------------- the phases


@pytest.mark.parametrize(
    "partitions",
    [
        {"type": "hashed", "numShards": 3},
        {"type": "hashed", "targetRowsPerSegment": 150},
        {"type": "single_dim", "partitionDimension": "a", "targetRowsPerSegment": 200},
        {"type": "range", "partitionDimensions": ["b", "a"], "targetRowsPerSegment": 200},
        {"type": "dynamic", "maxRowsPerSegment": 250},
    ],
    ids=lambda p: p["type"] + ("-n" if "numShards" in p else ""),
)
def test_parallel_equals_index_and_rolls_up_perfectly_across_splits(rt, tmp_path, partitions):
    rows = dup_heavy_rows(6000)
    d = write_files(tmp_path, rows, n_files=3)
    spec = parallel_spec(d, partitions, split={"type": "maxSize", "maxSplitSize": 40_000})
    assert len(splits_of(spec)) > 3  # files cut into ranges too
    report = parallel.run(spec, rt)
    index.run(as_index(spec), rt)
    assert visible(rt, "pp") == visible(rt, "ref")
    assert sum(r["count"] for r in visible(rt, "pp")) == len(rows)
    if partitions["type"] != "dynamic":
        assert_perfect_rollup(rt, report.segments)
    stats = report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert stats["processed"] == len(rows)
    assert stats["processedBytes"] == sum(p.stat().st_size for p in d.iterdir())
    assert partial_files(tmp_path) == []  # the partials went with the task
    assert rt.lockbox.locks(datasource="pp") == [] or all(not lk.active for lk in rt.lockbox.locks(datasource="pp"))


def test_hashed_numbering_is_the_index_tasks_first_arrival_order(rt, tmp_path):
    """index numbers a chunk's non-empty hash buckets 0..N-1 in the order their first row arrives (Druid's
    CachingLocalSegmentAllocator); index_parallel over many splits must give every bucket the same partitionNum."""
    rows = dup_heavy_rows(6000)
    d = write_files(tmp_path, rows, n_files=3)
    spec = parallel_spec(d, {"type": "hashed", "numShards": 8}, split={"type": "maxSize", "maxSplitSize": 30_000})
    assert len(splits_of(spec)) > 3
    got = parallel.run(spec, rt).segments
    want = index.run(as_index(spec), rt).segments

    def numbering(segments):
        return {(s.interval, s.shard_spec.bucket_id): (s.shard_spec.partition_num, s.shard_spec.partitions) for s in segments}

    assert numbering(got) == numbering(want)
    by_bucket = sorted(numbering(want).items())
    assert any(a[1][0] > b[1][0] for a, b in zip(by_bucket, by_bucket[1:]) if a[0][0] == b[0][0])  # not bucket order
    rows_of_got = {(s.interval, s.shard_spec.partition_num): segment_rows(rt, s) for s in got}
    rows_of_want = {(s.interval, s.shard_spec.partition_num): segment_rows(rt, s) for s in want}
    assert rows_of_got == rows_of_want


def reindex_spec(spec, source_ds, partitions, split=None):
    """``spec`` re-reading ``source_ds``'s segments (Druid's druid input source) instead of its files."""
    spec = copy.deepcopy(spec)
    schema = spec["spec"]["dataSchema"]
    schema["timestampSpec"] = {"column": "__time", "format": "millis"}
    schema["metricsSpec"] = [{"type": "longSum", "name": "count", "fieldName": "count"}, {"type": "longSum", "name": "v", "fieldName": "v"}]
    spec["spec"]["ioConfig"]["inputSource"] = {"type": "druid", "dataSource": source_ds, "interval": "2024-01-01/2024-01-03"}
    spec["spec"]["ioConfig"].pop("inputFormat")
    tuning = spec["spec"]["tuningConfig"]
    tuning.update({"partitionsSpec": partitions, "forceGuaranteedRollup": partitions["type"] != "dynamic", "maxNumConcurrentSubTasks": 3})
    tuning.pop("splitHintSpec", None)
    if split is not None:
        tuning["splitHintSpec"] = split
    return spec


@pytest.mark.parametrize(
    "partitions", [{"type": "hashed", "numShards": 4}, {"type": "dynamic", "maxRowsPerSegment": 400}], ids=lambda p: p["type"]
)
def test_parallel_over_a_druid_input_source_equals_index_over_it(rt, tmp_path, partitions):
    """Re-indexing existing segments: split by segment (Druid's druid input source splits), every split reading its
    segments' visible rows; the result equals the index task's over the same source, row for row and shard for shard."""
    rows = dup_heavy_rows(6000)
    d = write_files(tmp_path, rows, n_files=3)
    source = parallel_spec(d, {"type": "dynamic", "maxRowsPerSegment": 300}, ds="src")
    source["spec"]["dataSchema"]["granularitySpec"]["queryGranularity"] = "MINUTE"
    parallel.run(source, rt)
    source_segments = rt.store.used_segments("src")
    assert len(source_segments) > 6
    spec = reindex_spec(parallel_spec(d, partitions), "src", partitions, split={"type": "segments", "maxNumSegments": 2})
    task = parallel.DEFINITION.parse_task(spec, "")
    hint = parse_split_hint(task.spec.tuning_config.split_hint_spec)
    splits = segment_splits(task.spec.io_config.input_source, hint, 3, rt)
    assert len(splits) == (len(source_segments) + 1) // 2
    assert sorted(p.uri for s in splits for p in s.pieces) == sorted(s.id for s in source_segments)  # each once
    got = parallel.run(spec, rt)
    want = index.run(as_index(spec), rt)
    assert visible(rt, "pp") == visible(rt, "ref")
    assert sum(r["count"] for r in visible(rt, "pp")) == len(rows)
    if partitions["type"] == "hashed":
        assert_perfect_rollup(rt, got.segments)

        def shards(segments):
            return sorted((s.interval, s.shard_spec.bucket_id, s.shard_spec.partition_num, s.num_rows) for s in segments)

        assert shards(got.segments) == shards(want.segments)
    stats = got.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert stats["processed"] == want.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]["processed"]


def test_without_intervals_the_chunks_are_found_and_locked(rt, tmp_path):
    rows = dup_heavy_rows(2000)
    d = write_files(tmp_path, rows, n_files=2, fmt="csv")
    for partitions in ({"type": "dynamic"}, {"type": "hashed", "numShards": 2}, {"type": "single_dim", "partitionDimension": "b", "targetRowsPerSegment": 300}):
        spec = parallel_spec(d, partitions, fmt="csv", intervals=None, split={"type": "maxSize", "maxSplitSize": 20_000})
        report = parallel.run(spec, rt)
        assert {str(s.interval) for s in report.segments} == {
            "2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z",
            "2024-01-02T00:00:00.000Z/2024-01-03T00:00:00.000Z",
        }
        assert sum(r["count"] for r in visible(rt, "pp")) == len(rows)


def test_a_retried_partial_is_counted_once_and_only_its_files_are_merged(rt, tmp_path):
    rows = dup_heavy_rows(3000)
    d = write_files(tmp_path, rows, n_files=3)
    task = index.DEFINITION.parse_task(parallel_spec(d, {"type": "hashed", "numShards": 2}), "")
    from druidflow.tasks import protocol

    protocol.submit(task, rt, parallel.DEFINITION)
    protocol.acquire_locks(task, rt, parallel.DEFINITION)
    the_plan = parallel.plan(task, rt)
    first = [parallel.partial(task, the_plan, s, rt) for s in the_plan.splits]
    retried = parallel.partial(task, the_plan, the_plan.splits[0], rt)  # a second attempt of split 0
    assert retried.attempt != first[0].attempt
    assert {f.load_spec["path"] for f in retried.files}.isdisjoint({f.load_spec["path"] for f in first[0].files})
    with pytest.raises(SpecError, match="two attempts"):
        parallel.merges(task, the_plan, first + [retried], rt)
    with pytest.raises(SpecError, match="no partial result"):
        parallel.merges(task, the_plan, first[1:], rt)
    results = [retried] + first[1:]  # what the DAG hands over: each split's successful attempt
    units = parallel.merges(task, the_plan, results, rt)
    built = [parallel.merge(task, u, rt) for u in units]
    protocol.publish(task, parallel.final_plan(task, the_plan, units, results), built, rt, parallel.DEFINITION)
    assert sum(r["count"] for r in visible(rt, "pp")) == len(rows)
    assert parallel.cleanup(task.task_id, rt) == sum(len(r.files) for r in first + [retried])
    protocol.release(task.task_id, rt)


def test_concurrency_cuts_one_big_file_for_every_worker(rt, tmp_path, monkeypatch):
    monkeypatch.setattr("druidflow.inputs.splits.MIN_RANGE_BYTES", 1000)
    d = write_files(tmp_path, dup_heavy_rows(4000), n_files=1)
    assert len(splits_of(parallel_spec(d, {"type": "hashed", "numShards": 2}, concurrency=4))) == 4


def test_parallel_only_fields_are_honoured_or_refused(rt, tmp_path):
    d = write_files(tmp_path, dup_heavy_rows(100), n_files=1)
    spec = parallel_spec(d, {"type": "dynamic"}, concurrency=2)
    spec["spec"]["tuningConfig"]["maxRetry"] = 1
    assert parallel.max_retry(parallel.DEFINITION.parse_task(spec, "")) == 1
    spec["spec"]["tuningConfig"]["maxNumSegmentsToMerge"] = 4
    with pytest.raises(SpecError, match="maxNumSegmentsToMerge"):
        parallel.run(spec, rt)
    bad = parallel_spec(d, {"type": "dynamic"}, split={"type": "segments"})
    with pytest.raises(SpecError, match=r"splitHintSpec\.type"):
        parallel.run(bad, rt)


def test_total_num_merge_tasks_caps_the_merge_sub_tasks(rt, tmp_path):
    rows = dup_heavy_rows(3000)
    d = write_files(tmp_path, rows, n_files=2)
    spec = parallel_spec(d, {"type": "hashed", "numShards": 3}, split={"type": "maxSize", "maxSplitSize": 20_000})
    spec["spec"]["tuningConfig"]["totalNumMergeTasks"] = 2
    task = parallel.DEFINITION.parse_task(spec, "")
    from druidflow.tasks import protocol

    protocol.submit(task, rt, parallel.DEFINITION)
    protocol.acquire_locks(task, rt, parallel.DEFINITION)
    the_plan = parallel.plan(task, rt)
    results = [parallel.partial(task, the_plan, s, rt) for s in the_plan.splits]
    units = parallel.merges(task, the_plan, results, rt)
    assert len(units) == 2 and sorted(len(u.chunks) for u in units) == [3, 3]  # 2 days x 3 shards in 2 merges
    built = [parallel.merge(task, u, rt) for u in units]
    report = protocol.publish(task, parallel.final_plan(task, the_plan, units, results), built, rt, parallel.DEFINITION)
    protocol.release(task.task_id, rt)
    assert len(report.segments) == 6
    assert sum(r["count"] for r in visible(rt, "pp")) == len(rows)
    assert_perfect_rollup(rt, report.segments)


def test_druidflow_run_of_an_index_parallel_spec(tmp_path, sqlite_url):
    rows = dup_heavy_rows(1500)
    d = write_files(tmp_path, rows, n_files=2)
    spec = parallel_spec(d, {"type": "hashed", "numShards": 2}, split={"type": "maxSize", "maxSplitSize": 10_000})
    path = tmp_path / "parallel.json"
    path.write_text(json.dumps(spec))
    env = dict(os.environ, DRUIDFLOW_METADATA_URL=sqlite_url, DRUIDFLOW_DEEP_STORAGE=str(tmp_path / "deep"), DRUIDFLOW_WORK_DIR=str(tmp_path / "work"))
    proc = druidflow("run", str(path), env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["reports"]["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]["processed"] == len(rows)
    assert len(report["segments"]) == 4
    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")
    assert pc.sum(rows_of(rt, "pp")["count"]).as_py() == len(rows)
