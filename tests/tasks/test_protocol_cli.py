"""``druidflow run SPEC.json`` for the new task types, as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import os

import pytest

from tests.tasks.test_merge import METRICS, index_spec, rows
from tests.test_cli import druidflow


@pytest.fixture
def env(tmp_path, sqlite_url) -> dict:
    e = dict(os.environ)
    e["DRUIDFLOW_METADATA_URL"] = sqlite_url
    e["DRUIDFLOW_DEEP_STORAGE"] = str(tmp_path / "deep")
    e["DRUIDFLOW_WORK_DIR"] = str(tmp_path / "work")
    return e


def run_spec(tmp_path, env, spec, name):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    return druidflow("run", str(path), env=env)


def test_merge_and_convert_from_the_command_line(tmp_path, env):
    assert run_spec(tmp_path, env, index_spec(rows()), "index").returncode == 0
    listed = druidflow("segments", "m", "--json", env=env)
    segments = [{k: v for k, v in s.items() if k not in ("id", "used")} for s in json.loads(listed.stdout)]
    assert len(segments) == 3

    merged = run_spec(tmp_path, env, {"type": "merge", "dataSource": "m", "segments": segments, "aggregations": METRICS}, "merge")
    assert merged.returncode == 0, merged.stderr
    report = json.loads(merged.stdout)
    assert report["status"] == "SUCCESS" and len(report["segments"]) == 1

    converted = run_spec(tmp_path, env, {"type": "convert_segment", "dataSource": "m", "interval": "2024-01-01/2024-01-04",
                                         "indexSpec": {"dimensionCompression": "zstd"}, "force": True}, "convert")
    assert converted.returncode == 0, converted.stderr
    assert json.loads(converted.stdout)["segments"][0]["version"].endswith("_converted")

    tasks = json.loads(druidflow("tasks", "--json", env=env).stdout)
    assert {t["type"] for t in tasks} >= {"index", "merge", "convert_segment"}


def test_bad_input_is_one_line_naming_the_field(tmp_path, env):
    assert run_spec(tmp_path, env, index_spec(rows(days=(1, 3))), "index").returncode == 0
    segments = [{k: v for k, v in s.items() if k not in ("id", "used")} for s in json.loads(druidflow("segments", "m", "--json", env=env).stdout)]
    bad = run_spec(tmp_path, env, {"type": "append", "dataSource": "m", "segments": segments}, "append")
    assert bad.returncode != 0
    assert "segments[1].interval" in bad.stderr and "not adjacent" in bad.stderr
    assert "Traceback" not in bad.stderr
