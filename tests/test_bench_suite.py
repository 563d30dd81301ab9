"""``python -m bench.run --quick``: every figure of issue 20 is measured and printed with its ratio and target."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import bench.suite as suite

REPO = Path(__file__).resolve().parent.parent

FIGURES = [
    "build / fastest peer, high-cardinality, csv",
    "build / fastest peer, high-cardinality, json",
    "build / fastest peer, heavy rollup normal, csv",
    "build / fastest peer, heavy rollup normal, json",
    "build / fastest peer, heavy rollup extreme, csv",
    "build / fastest peer, heavy rollup extreme, json",
    "druidflow run fixed overhead",
    "hashed (numShards 3) / dynamic ingest",
    "peak RSS 200k / 20k rows",
]


@pytest.mark.slow
def test_quick_runs_every_figure_and_prints_its_ratio_against_its_target(tmp_path):
    cmd = [sys.executable, "-m", "bench.run", "--quick", "--skip-metadata", "--no-save", "--data", str(tmp_path / "data")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    summary = done.stdout.split("Issue 20 figures", 1)[1]
    for name in FIGURES:
        line = re.search(rf"^  {re.escape(name)}\s+(\S+)\s+<= (\S+)\s+(met|MISSED)$", summary, re.M)
        assert line, f"{name!r} missing from the summary:\n{summary}"
        assert line.group(1) != "n/a"
    assert "Agreement and failures: OK" in summary
    overhead_line = next(line for line in done.stdout.splitlines() if "=> druidflow run fixed overhead" in line)
    assert "heavy imports: none" in overhead_line, overhead_line


def test_quick_calls_only_the_metadata_modules_that_have_a_quick_mode(monkeypatch):
    calls = []

    def with_quick(url, quick=False):
        calls.append(("with", url.split(":")[0], quick))
        return {"pairs_per_s": 1.0}

    def without_quick(url):
        calls.append(("without", url))
        return {}

    monkeypatch.setitem(sys.modules, "fake_quick", types.SimpleNamespace(run=with_quick))
    monkeypatch.setitem(sys.modules, "fake_slow", types.SimpleNamespace(run=without_quick))
    monkeypatch.setattr(suite, "SUITE_METADATA_MODULES", ("fake_quick", "fake_slow"))
    figures = suite.metadata_figures(True, "postgresql+psycopg2://nowhere/none")
    assert calls == [("with", "sqlite", True), ("with", "postgresql+psycopg2", True)]
    assert figures["fake_quick"]["sqlite"]["pairs_per_s"] == 1.0
    assert figures["fake_slow"] == {"status": "skipped", "reason": "its run(url) has no quick mode"}


def test_memory_falls_back_to_20m_rows_when_the_disk_is_too_small(tmp_path, monkeypatch):
    args = types.SimpleNamespace(rows="5M", repeat=1)
    sizes = suite.Sizes(False, args)
    monkeypatch.setattr(suite.shutil, "disk_usage", lambda path: types.SimpleNamespace(free=5 * suite.GIB))
    rows, note = suite.memory_sizes(sizes, tmp_path)
    assert rows == [5_000_000, 20_000_000] and "5M vs 20M" in note
    monkeypatch.setattr(suite.shutil, "disk_usage", lambda path: types.SimpleNamespace(free=100 * suite.GIB))
    assert suite.memory_sizes(sizes, tmp_path) == ([5_000_000, 50_000_000], "")
