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
        line = re.search(rf"^  {re.escape(name)}\s+(\S+)\s+<= (\S+)\s+(\S+)\s+(met|MISSED)$", summary, re.M)
        assert line, f"{name!r} missing from the summary:\n{summary}"
        assert line.group(1) != "n/a"
        assert float(line.group(3)) > 0  # the ratio to the target
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


def test_the_metadata_targets_are_summary_figures_with_their_ratios(capsys):
    ok = {"status": "ok", "load_average": "1.00, 1.00, 1.00"}
    metadata = {
        "metadata": {
            "sqlite": {**ok, "visible_timeline_1M_stored_s": 1.0, "visible_timeline_1M_stored_cpu_s": 0.9,
                       "visible_timeline_1M_stored_peak_mib": 112.0, "publish_100k_s": 4.0, "publish_100k_cpu_s": 3.0},
            "postgresql": {**ok, "visible_timeline_1M_stored_s": 3.0, "visible_timeline_1M_stored_cpu_s": 1.5,
                           "visible_timeline_1M_stored_peak_mib": 600.0, "publish_100k_s": 6.0, "publish_100k_cpu_s": 2.5},
        },
        "planner": {"sqlite": {**ok, "plan_1M_segments_s": 4.0, "plan_1M_segments_cpu_s": 3.9}},
        "locks": {"postgresql": {"status": "ok", "8_processes_distinct_datasources_pairs_per_s": 600.0,
                                 "distinct_datasources_cpu_bound_pairs_per_s": 2500.0}},
    }  # fmt: skip
    figures = {f["figure"]: f for f in suite.metadata_target_figures(metadata)}
    pg_visible = figures["visible timeline, 1M stored segments, PostgreSQL"]
    assert (pg_visible["value"], pg_visible["ratio_to_target"], pg_visible["met"]) == (3.0, 1.5, False)
    assert figures["visible timeline, 1M stored segments, PostgreSQL, CPU"]["met"] is True
    assert figures["visible timeline peak memory, 1M stored, PostgreSQL"]["met"] is False
    assert figures["publish 100k segments, PostgreSQL"]["ratio_to_target"] == 1.2
    assert figures["auto-compaction plan, 1M segments"]["met"] is True
    # A throughput meets its target from above.
    locks = figures["lock pairs/s, 8 processes on distinct dataSources, PostgreSQL"]
    assert (locks["ratio_to_target"], locks["met"]) == (0.6, False)
    assert figures["lock pairs/s, 8 processes on distinct dataSources, PostgreSQL, CPU bound"]["met"] is True
    # A module that failed is "not measured", not a crash.
    assert figures["auto-compaction plan, 1M segments"]["value"] == 4.0
    missing = suite.metadata_target_figures({"planner": {"sqlite": {"status": "failed"}}})
    assert all(f["met"] is None for f in missing)
    suite.print_summary(list(figures.values()), [], 1.0)
    out = capsys.readouterr().out
    assert re.search(r"lock pairs/s, 8 processes on distinct dataSources, PostgreSQL\s+600.00/s\s+>= 1000/s\s+0.60\s+MISSED", out)
    assert re.search(r"publish 100k segments, PostgreSQL\s+6.00s\s+<= 5s\s+1.20\s+MISSED", out)
