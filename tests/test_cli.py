"""The ``druidflow`` command line, run as a user runs it: a real subprocess with its own environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def druidflow(*args: str, env: dict, cwd: Path = ROOT, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "druidflow.cli", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def env(tmp_path, db_url) -> dict:
    e = dict(os.environ)
    e["DRUIDFLOW_METADATA_URL"] = db_url
    e["DRUIDFLOW_DEEP_STORAGE"] = str(tmp_path / "deep")
    e["DRUIDFLOW_WORK_DIR"] = str(tmp_path / "work")
    return e


def test_run_segments_read_and_tasks(env):
    run = druidflow("run", "examples/wikipedia-index.json", env=env)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    payload = report["reports"]["ingestionStatsAndErrors"]["payload"]
    assert payload["rowStats"]["buildSegments"]["processed"] == 16000
    assert payload["segmentsPublished"] == 7

    seg = druidflow("segments", "wikipedia", "--json", env=env)
    assert seg.returncode == 0, seg.stderr
    segments = json.loads(seg.stdout)
    assert len(segments) == 7
    first = segments[0]
    for key in ("id", "dataSource", "interval", "version", "shardSpec", "dimensions", "metrics", "size", "numRows", "loadSpec", "used"):
        assert key in first
    assert first["dimensions"] == "page,language,user,country,isRobot,namespace" and first["used"] is True

    read = druidflow("read", "wikipedia", "--interval", "2024-01-01T00:00/2024-01-01T01:00", "--format", "json", env=env)
    assert read.returncode == 0, read.stderr
    rows = [json.loads(line) for line in read.stdout.splitlines()]
    assert rows and all(r["__time"] == "2024-01-01T00:00:00.000Z" for r in rows)
    assert set(rows[0]) == {"__time", "page", "language", "user", "country", "isRobot", "namespace", "count", "added", "deleted", "delta"}

    csv_out = druidflow("read", "wikipedia", "--interval", "2024-01-01T00:00/2024-01-01T01:00", env=env)
    assert csv_out.stdout.splitlines()[0].startswith("__time,page,")
    assert len(csv_out.stdout.splitlines()) == len(rows) + 1

    tasks = druidflow("tasks", "--json", env=env)
    (task,) = json.loads(tasks.stdout)
    assert task["status"] == "SUCCESS" and task["type"] == "index"
    assert task["report"]["ingestionStatsAndErrors"]["payload"]["segmentsPublished"] == 7

    timeline = druidflow("timeline", "wikipedia", env=env)
    assert timeline.returncode == 0
    assert sum(line.startswith("2024-01-0") for line in timeline.stdout.splitlines()) == 7


def test_segments_all_shows_unused_ones(env):
    assert druidflow("run", "examples/wikipedia-index.json", env=env).returncode == 0
    assert druidflow("run", "examples/wikipedia-index.json", env=env).returncode == 0
    used = json.loads(druidflow("segments", "wikipedia", "--json", env=env).stdout)
    every = json.loads(druidflow("segments", "wikipedia", "--all", "--json", env=env).stdout)
    assert len(used) <= len(every)
    assert len({s["version"] for s in every}) == 2


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (("run", "does-not-exist.json"), None, "does-not-exist.json"),
        (("run", "-"), "{not json", "not valid JSON"),
        (("run", "-"), json.dumps({"type": "index", "spec": {"dataSchema": {"dataSource": "x"}}}), "spec."),
        (("read", "wikipedia", "--interval", "yesterday"), None, "--interval"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(env, args, stdin, message):
    out = druidflow(*args, env=env, stdin=stdin)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("druidflow: error:") and message in lines[0]


def test_defaults_work_with_no_configuration(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUIDFLOW_")}
    (tmp_path / "examples").mkdir()
    for name in ("wikipedia-index.json", "wikipedia-sample.json"):
        (tmp_path / "examples" / name).write_bytes((ROOT / "examples" / name).read_bytes())
    out = druidflow("demo", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "published 7 segments" in out.stdout and "visible timeline of wikipedia" in out.stdout
    assert (tmp_path / "var" / "druidflow" / "metadata.db").exists()
    assert any((tmp_path / "var" / "druidflow" / "deep-storage" / "wikipedia").iterdir())
