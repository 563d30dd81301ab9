"""``index_hadoop``: Druid's Hadoop batch spec, its build run as a Spark job (local mode) into the index task's code.

The reference is the ``index`` task on the same files: read back, the visible rows of both are identical, for
dynamic, hashed and single_dim partitioning and for static and granularity inputSpecs. Spec errors name the field
and its value before any work starts.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pyarrow as pa
import pytest

from druidflow.exceptions import InputError, ParseExceptionLimitExceeded, SpecError
from druidflow.intervals import parse_instant
from druidflow.specs.hadoop_task import HadoopTuningConfig, split_paths
from druidflow.specs.tasks import parse_task
from druidflow.tasks import hadoop, index, protocol
from druidflow.tasks.hadoop_paths import granularity_dirs, print_joda, resolve_input
from druidflow.tasks.runtime import Runtime
from druidflow.tasks.spark_build import missing_pyspark_message
from tests.tasks.test_index import rows_of
from tests.tasks.test_index_partitioning import dup_heavy_rows

pytestmark = pytest.mark.slow

METRICS = [{"type": "count", "name": "count"}, {"type": "longSum", "name": "v", "fieldName": "v"}]


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    from druidflow.tasks.spark_build import spark_session

    session, _ = spark_session({"spark.master": "local[2]", "spark.sql.shuffle.partitions": "4"}, "druidflow-tests")
    yield session
    session.stop()


@pytest.fixture
def rt(sqlite_url, tmp_path) -> Runtime:
    return Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")


def write_static(tmp_path, rows, n_files=3):
    d = tmp_path / "static"
    d.mkdir()
    per = (len(rows) + n_files - 1) // n_files
    for i in range(n_files):
        (d / f"part-{i}.json").write_text("".join(json.dumps(r) + "\n" for r in rows[i * per : (i + 1) * per]))
    (d / "_SUCCESS").write_text("")
    return d


def write_hourly(tmp_path, rows):
    """Rows under ``y=/m=/d=/H=`` directories by their hour, as a granularity inputSpec expects them."""
    base = tmp_path / "hourly"
    by_dir = defaultdict(list)
    for r in rows:
        day, hour = r["ts"][8:10], r["ts"][11:13]
        by_dir[f"y=2024/m=01/d={day}/H={hour}"].append(r)
    for rel, part in by_dir.items():
        (base / rel).mkdir(parents=True)
        (base / rel / "data.json").write_text("".join(json.dumps(r) + "\n" for r in part))
        (base / rel / "ignored.txt").write_text("not json\n")
    return base


def schema(ds):
    return {
        "dataSource": ds,
        "metricsSpec": METRICS,
        "granularitySpec": {"type": "uniform", "segmentGranularity": "DAY", "queryGranularity": "HOUR", "intervals": ["2024-01-01/2024-01-03"]},
    }


def hadoop_spec(ds, input_spec, partitions=None, intervals=True, **tuning):
    data_schema = schema(ds)
    data_schema["parser"] = {
        "type": "hadoopyString",
        "parseSpec": {"format": "json", "timestampSpec": {"column": "ts", "format": "auto"}, "dimensionsSpec": {"dimensions": ["a", "b"]}},
    }
    if not intervals:
        del data_schema["granularitySpec"]["intervals"]
    tuning_config = {"type": "hadoop", **tuning}
    if partitions is not None:
        tuning_config["partitionsSpec"] = partitions
    return {"type": "index_hadoop", "spec": {"dataSchema": data_schema, "ioConfig": {"type": "hadoop", "inputSpec": input_spec}, "tuningConfig": tuning_config}}


def index_spec(ds, directory, partitions, intervals=True):
    data_schema = schema(ds)
    data_schema["timestampSpec"] = {"column": "ts", "format": "auto"}
    data_schema["dimensionsSpec"] = {"dimensions": ["a", "b"]}
    if not intervals:
        del data_schema["granularitySpec"]["intervals"]
    return {
        "type": "index",
        "spec": {
            "dataSchema": data_schema,
            "ioConfig": {"type": "index", "inputSource": {"type": "local", "baseDir": str(directory), "filter": "*.json"}, "inputFormat": {"type": "json"}},
            "tuningConfig": {"type": "index", "partitionsSpec": partitions, "forceGuaranteedRollup": partitions["type"] != "dynamic"},
        },
    }


def sorted_rows(rt, ds) -> pa.Table:
    table = rows_of(rt, ds)
    table = table.select(sorted(table.column_names))
    table = pa.table({n: c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for n, c in zip(table.column_names, table.columns)})
    return table.sort_by([(c, "ascending") for c in table.column_names])


CASES = {
    "dynamic-static": ({"type": "dynamic", "maxRowsPerSegment": 700}, "static", True),
    "dynamic-static-no-intervals": ({"type": "dynamic"}, "static", False),
    "hashed-numShards-static": ({"type": "hashed", "numShards": 3}, "static", True),
    "hashed-default-granularity": (None, "granularity", True),
    "single_dim-granularity": ({"type": "single_dim", "partitionDimension": "a", "targetRowsPerSegment": 400}, "granularity", True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_data_through_index_and_index_hadoop_gives_identical_rows(spark, rt, tmp_path, case):
    partitions, kind, intervals = CASES[case]
    rows = dup_heavy_rows(3000)
    static = write_static(tmp_path, rows)
    if kind == "static":
        input_spec = {"type": "static", "paths": f"{static}/part-{{0,1}}.json,{static}/part-2.json"}
    else:
        input_spec = {"type": "granularity", "dataGranularity": "hour", "inputPath": str(write_hourly(tmp_path, rows)), "filePattern": ".*\\.json"}
    reference = partitions or {"type": "hashed", "targetRowsPerSegment": 5_000_000}
    index.run(index_spec("ref", static, reference, intervals), rt)
    report = hadoop.run(hadoop_spec("hd", input_spec, partitions, intervals), rt)

    expected, got = sorted_rows(rt, "ref"), sorted_rows(rt, "hd")
    assert got.num_rows == expected.num_rows > 0
    assert got.equals(expected)
    payload = report.reports["ingestionStatsAndErrors"]["payload"]
    assert payload["rowStats"]["buildSegments"]["processed"] == len(rows)
    segments = rt.store.used_segments("hd")
    assert {s.shard_spec.type for s in segments} == {{"dynamic": "numbered", "single_dim": "single"}.get(reference["type"], reference["type"])}
    if case == "dynamic-static":
        assert max(s.num_rows for s in segments) <= 700 and len(segments) > 2  # maxRowsPerSegment cut the chunks
    if case == "hashed-numShards-static":
        assert all(s.shard_spec.partitions == len([t for t in segments if t.interval == s.interval]) for s in segments)
    record = rt.store.get_task(report.task_id)
    assert record.status == "SUCCESS" and record.type == "index_hadoop"
    assert not rt.lockbox.locks(datasource="hd")  # released


def test_a_bad_row_fails_the_task_by_default_as_druids_hadoop_task_does(spark, rt, tmp_path):
    rows = dup_heavy_rows(200)
    static = write_static(tmp_path, rows, n_files=1)
    with open(static / "part-0.json", "a") as f:
        f.write("{not json\n")
    with pytest.raises(ParseExceptionLimitExceeded):
        hadoop.run(hadoop_spec("bad", {"type": "static", "paths": str(static)}, {"type": "dynamic"}), rt)
    assert rt.store.used_segments("bad") == []
    report = hadoop.run(hadoop_spec("bad", {"type": "static", "paths": str(static)}, {"type": "dynamic"}, ignoreInvalidRows=True), rt)
    stats = report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert stats["unparseable"] == 1 and stats["processed"] == len(rows)


# ------------------------------------------------------------------------------------------- spec errors


def error_of(spec) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_task(spec)
    return info.value


STATIC = {"type": "static", "paths": "/tmp/x.json"}


@pytest.mark.parametrize(
    "mutate, field, value",
    [
        (lambda s: s["spec"]["tuningConfig"].update(partitionsSpec={"type": "range", "partitionDimensions": ["a"], "targetRowsPerSegment": 5}), "partitionsSpec.type", "range"),
        (lambda s: s["spec"]["tuningConfig"].update(workingPath="/tmp/w"), "workingPath", "/tmp/w"),
        (lambda s: s["spec"]["tuningConfig"].update(useExplicitVersion=True), "useExplicitVersion", True),
        (lambda s: s["spec"]["tuningConfig"].update(leaveIntermediate=True), "leaveIntermediate", True),
        (lambda s: s["spec"]["tuningConfig"].update(type="index"), "type", "index"),
        (lambda s: s["spec"]["ioConfig"]["inputSpec"].update(inputFormat="org.apache.hadoop.mapreduce.lib.input.SequenceFileInputFormat"), "inputFormat", "org.apache.hadoop.mapreduce.lib.input.SequenceFileInputFormat"),
        (lambda s: s["spec"]["ioConfig"].update(inputSpec={"type": "dataSource", "ingestionSpec": {}}), "inputSpec.type", "dataSource"),
        (lambda s: s["spec"]["ioConfig"].update(segmentOutputPath="/out"), "segmentOutputPath", "/out"),
        (lambda s: s.update(hadoopDependencyCoordinates=["org.apache.hadoop:hadoop-client:2.8.5"]), "hadoopDependencyCoordinates", ["org.apache.hadoop:hadoop-client:2.8.5"]),
        (lambda s: s["spec"]["dataSchema"]["parser"]["parseSpec"].update(format="csv", columns=["ts", "a"], hasHeaderRow=True), "hasHeaderRow", True),
        (lambda s: s["spec"]["tuningConfig"].update(partitionsSpec={"type": "single_dim", "partitionDimension": "a", "targetRowsPerSegment": 5}, forceExtendableShardSpecs=True), "forceExtendableShardSpecs", True),
        (lambda s: s["spec"]["ioConfig"].update(inputSpec={"type": "granularity", "dataGranularity": "hour", "inputPath": "/x", "filePattern": "(unclosed"}), "filePattern", "(unclosed"),
    ],
)
def test_spec_errors_name_the_field_and_value(mutate, field, value):
    spec = hadoop_spec("ds", dict(STATIC))
    mutate(spec)
    error = error_of(spec)
    assert field in error.path and error.value == value, str(error)


def test_fields_druidflow_cannot_honour_are_refused_before_any_lock(rt, tmp_path):
    (tmp_path / "a.json").write_text("{}\n")
    spec = hadoop_spec("res", {"type": "static", "paths": str(tmp_path)})
    spec["resource"] = {"availabilityGroup": "g", "requiredCapacity": 2}
    with pytest.raises(SpecError, match="requiredCapacity|availabilityGroup"):
        protocol.submit(parse_task(spec), rt, hadoop.DEFINITION)
    assert not rt.lockbox.locks(datasource="res")


def test_a_granularity_input_spec_needs_intervals():
    spec = hadoop_spec("ds", {"type": "granularity", "dataGranularity": "hour", "inputPath": "/x", "filePattern": ".*"}, intervals=False)
    assert "intervals" in error_of(spec).path


def test_paths_that_match_nothing_fail_before_any_lock(rt, tmp_path):
    task = parse_task(hadoop_spec("nothing", {"type": "static", "paths": f"{tmp_path}/*.json"}))
    with pytest.raises(InputError, match="matches 0 files"):
        protocol.submit(task, rt, hadoop.DEFINITION)
    assert not rt.lockbox.locks(datasource="nothing")


def test_static_paths_are_hadoop_globs_directories_and_comma_lists(tmp_path):
    for name in ("a.json", "b.json", "c.csv", "_SUCCESS", ".hidden"):
        (tmp_path / name).write_text("{}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.json").write_text("{}\n")
    def resolve(paths):
        return sorted(p.rsplit("/", 1)[1] for p in resolve_input(parse_task(hadoop_spec("ds", {"type": "static", "paths": paths}))).files)
    assert resolve(str(tmp_path)) == ["a.json", "b.json", "c.csv"]  # a directory: its visible files, not recursively
    assert resolve(f"{tmp_path}/*.json") == ["a.json", "b.json"]  # * stays within one level
    assert resolve(f"{tmp_path}/{{a,c}}.*,file:{tmp_path}/sub/d.json") == ["a.json", "c.csv", "d.json"]
    assert split_paths("a/{x,y}/*.gz, b") == ["a/{x,y}/*.gz", "b"]


def test_granularity_directories_follow_the_path_format_over_the_intervals():
    spec = hadoop_spec("ds", {"type": "granularity", "dataGranularity": "hour", "inputPath": "/data/", "filePattern": ".*"})
    spec["spec"]["dataSchema"]["granularitySpec"]["intervals"] = ["2024-01-01T22:30/2024-01-02T01:00"]
    task = parse_task(spec)
    assert granularity_dirs(task, task.spec.io_config.input_spec) == [
        "/data/y=2024/m=01/d=01/H=22", "/data/y=2024/m=01/d=01/H=23", "/data/y=2024/m=01/d=02/H=00",
    ]
    assert print_joda(parse_instant("2024-03-05T07:00:00Z"), "yyyy/MM/'day'dd") == "2024/03/day05"


def test_job_properties_become_spark_conf():
    tuning = HadoopTuningConfig.parse({"type": "hadoop", "jobProperties": {"spark.master": "local[3]", "mapreduce.job.maps": 4, "fs.x": True}})
    assert tuning.spark_conf() == {"spark.master": "local[3]", "spark.hadoop.mapreduce.job.maps": "4", "spark.hadoop.fs.x": "true"}


def test_ignore_invalid_rows_decides_the_parse_exception_limit_as_in_druid():
    assert HadoopTuningConfig.parse({}).effective_max_parse_exceptions == 0
    assert HadoopTuningConfig.parse({"ignoreInvalidRows": True}).effective_max_parse_exceptions == 2**31 - 1
    assert HadoopTuningConfig.parse({"ignoreInvalidRows": True, "maxParseExceptions": 5}).effective_max_parse_exceptions == 5


def test_the_default_partitioning_is_druids_hashed_with_a_target():
    spec = HadoopTuningConfig.parse({"type": "hadoop"}).partitions_spec
    assert spec.type == "hashed" and spec.target_rows_per_segment == 5_000_000 and spec.num_shards is None


def test_without_pyspark_the_error_names_the_extra():
    assert "pip install 'druidflow[spark]'" in missing_pyspark_message() and "pyspark" in missing_pyspark_message()


def test_the_overlord_api_and_the_registry_serve_index_hadoop():
    from druidflow.airflow.druid_api.task_dags import task_dag
    from druidflow.tasks.registry import definition, spec_model

    assert task_dag("index_hadoop").dag_id == "druidflow_index_hadoop"
    assert definition("index_hadoop") is hadoop.DEFINITION and spec_model("index_hadoop").__name__ == "HadoopIndexTask"
    assert parse_task(hadoop_spec("ds", dict(STATIC))).priority == 50  # Druid's batch default
