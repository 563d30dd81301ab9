"""``SparkIndexOperator``: the spark-submit command it builds (Spark provider conventions), and that command run for
real: spark-submit in local mode drives an index_hadoop task whose segments Druidflow publishes."""

from __future__ import annotations

import json
import subprocess

import pytest
from airflow.models.connection import Connection
from airflow.sdk.exceptions import AirflowFailException

from druidflow.operators.spark import SparkIndexOperator
from druidflow.tasks import spark_submit
from druidflow.tasks.runtime import Runtime
from tests.tasks.test_index_hadoop import hadoop_spec, write_static
from tests.tasks.test_index_partitioning import dup_heavy_rows


def test_the_command_follows_the_spark_providers_conventions(tmp_path):
    spec = hadoop_spec("ds", {"type": "static", "paths": "/tmp/x.json"}, jobProperties={"spark.executor.memory": "1g", "mapreduce.job.maps": 3})
    conn = Connection(conn_id="spark_yarn", conn_type="spark", host="yarn", extra=json.dumps({"deploy-mode": "cluster", "spark-binary": "/opt/spark/bin/spark-submit"}))
    op = SparkIndexOperator(task_id="t", spec=spec, conn_id="spark_yarn", conf={"spark.executor.cores": 2}, name="ingest")
    cmd = op.build_command("/tmp/task.json", "sqlite:///m.db", "/deep", conn)
    assert cmd[:7] == ["/opt/spark/bin/spark-submit", "--master", "yarn", "--name", "ingest", "--deploy-mode", "cluster"]
    pairs = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--conf"]
    assert pairs == ["spark.executor.cores=2", "spark.executor.memory=1g", "spark.hadoop.mapreduce.job.maps=3"]
    assert cmd[-5:] == ["/tmp/task.json", "--metadata-url", "sqlite:///m.db", "--deep-storage", "/deep"] and cmd[-6] == spark_submit.__file__
    # master: the operator's, over jobProperties' spark.master, over the Connection's; local mode without any
    assert SparkIndexOperator(task_id="t", spec=spec, master="local[3]").build_command("/s", "u", "d", conn)[2] == "local[3]"
    assert SparkIndexOperator(task_id="t", spec=spec).build_command("/s", "u", "d", None)[2] == "local[*]"
    with pytest.raises(AirflowFailException, match="index_hadoop"):
        SparkIndexOperator(task_id="t", spec={"type": "kill", "dataSource": "x", "interval": "2024/2025"}).build_command("/s", "u", "d")


@pytest.mark.slow
def test_spark_submit_runs_the_task_and_druidflow_publishes_it(tmp_path, sqlite_url):
    pytest.importorskip("pyspark")
    rows = dup_heavy_rows(500)
    static = write_static(tmp_path, rows, n_files=2)
    spec = hadoop_spec("submitted", {"type": "static", "paths": f"{static}/*.json"}, {"type": "hashed", "numShards": 2})
    task_file = tmp_path / "task.json"
    task_file.write_text(json.dumps(spec))
    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")
    op = SparkIndexOperator(task_id="t", spec=spec, master="local[2]")
    done = subprocess.run(op.build_command(str(task_file), sqlite_url, str(tmp_path / "deep")), capture_output=True, text=True, timeout=600, env=op.submit_env())
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    segments = rt.store.used_segments("submitted")
    assert sorted((s["interval"], s["version"]) for s in report["segments"]) == sorted((str(s.interval), s.version) for s in segments)
    assert {s.shard_spec.type for s in segments} == {"hashed"} and len(segments) == 4  # 2 days x 2 shards
    assert rt.store.get_task(report["taskId"]).status == "SUCCESS"
